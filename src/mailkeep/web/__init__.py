"""HTTP transports: the MailStore-compatible Administration API (and later the console)."""
