"""The admin edge: a shared server's housekeeping (:mod:`.housekeeping`: disk use, every job, deleting data) and
the one-off move of LayerLab 0.1's owner folders (:mod:`.owner_migration`). Above the jobs and search edges, whose
jobs and studies they stop and delete."""
