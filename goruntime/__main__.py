from goruntime.cli import main

main()
