from workshop.board.app import main

main()
