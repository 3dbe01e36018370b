from goruntime.cmd.main import main

main()
