"""notifier: tells every participant of a school Conversation about a new message, on the
channel and in the language they prefer."""
