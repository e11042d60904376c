"""The administrative domain: accounts, credentials, console sessions, settings, sealed secrets,
time zones and run locks."""
