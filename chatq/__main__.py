from chatq.cli import main

main()
