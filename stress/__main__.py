import sys

from stress.runner import main

sys.exit(main())
