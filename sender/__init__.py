"""umstrack sender: provider clients, message validation and the UMS emulator."""
