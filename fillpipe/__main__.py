from fillpipe.cli import main

main()
