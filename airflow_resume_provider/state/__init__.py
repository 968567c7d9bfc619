"""The stored state of a task attempt: the record, where it lives, how it is read and written."""
