"""``python -m cf_transcribe_pandas.cli``: the ``cf-transcribe`` command."""

import sys

from cf_transcribe_pandas.cli.main import main

sys.exit(main())
