"""Pure logic: no I/O, no asyncio, no database. Time comes in as an argument."""
