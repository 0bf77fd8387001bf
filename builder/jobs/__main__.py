"""``python -m builder.jobs`` (LayerLab 0.1's job command) runs ``python -m builder.jobs.queue``."""

import sys

from builder.jobs.queue import main

sys.exit(main())
