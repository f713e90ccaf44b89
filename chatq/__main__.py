from chatq.command import main

main()
