from iopcare.devtools.kafka.cli import main

raise SystemExit(main())
