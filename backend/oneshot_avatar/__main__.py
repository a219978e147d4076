import sys

from oneshot_avatar.cli import main

sys.exit(main())
