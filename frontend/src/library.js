// Model-library entries of the palette (builder.interchange.hf_library.library_palette): a pretrained model is
// not a layer; dropping it asks Python to import it by name (one-shot event), never inserts a node here.

// What the palette and the drag ghost call an entry.
export function entryLabel(entry) {
  return String(entry?.label || entry?.type || '');
}

// The one-shot event a dropped library entry sends, or null for a layer/block entry. The nonce makes a second
// drop of the same model a new event.
export function libraryEvent(entry, nonce) {
  const name = entry?.library?.name;
  if (typeof name !== 'string' || !name) return null;
  return { type: 'library', name, nonce };
}
