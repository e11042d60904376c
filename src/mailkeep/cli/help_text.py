"""What `mailkeep --help` writes on a terminal of 80 columns or more, written by `make docs`
(cli/group.py's help_for_80_columns; tests/test_cli.py keeps it so)."""

HELP = (
    'Usage: mailkeep [OPTIONS] COMMAND [ARGS]...\n'
    '\n'
    '  mailkeep: a self-hosted email archive.\n'
    '\n'
    'Options:\n'
    '  --data PATH     Data directory ($MAILKEEP_DATA, else ./mailkeep-data).\n'
    '  --database URL  The master database in PostgreSQL\n'
    '                  (postgresql://user@host:port/db, or $MAILKEEP_DATABASE)\n'
    "                  instead of the data directory's SQLite file.\n"
    "  --objects URL   The stores' segments in S3-compatible object storage\n"
    '                  (s3://bucket/prefix, or $MAILKEEP_OBJECTS; with --database)\n'
    '                  instead of the data directory.\n'
    '  --version       Show the version and exit.\n'
    '  -h, --help      Show this message and exit.\n'
    '\n'
    'Commands:\n'
    '  audit         The audit log: list or export it, verify its hash chain.\n'
    "  backends      Where this data directory's installation keeps what it...\n"
    '  call          Run an Administration API function and print its result...\n'
    '  export        Write messages back out, byte for byte.\n'
    '  folders       The folder tree with message counts and sizes.\n'
    '  heads         Signed tree heads: the public key, the list, an export,...\n'
    '  import        Import .eml files, directories, mbox files (also .gz),...\n'
    "  migrate       Move this data directory's installation into PostgreSQL...\n"
    '  profile       Archiving profiles: IMAP and POP3 mailboxes, watched...\n'
    "  proof         Write message ID's exact bytes, its inclusion proof and...\n"
    "  recover       Rebuild a store's catalog and full-text index from its...\n"
    '  search        Full-text search, newest first.\n'
    '  serve         Run the archive server: the Administration API over HTTPS.\n'
    '  settings      Server settings (kept in the data directory; flags of...\n'
    '  show          Show one message (ID is <storeId>:<number>).\n'
    '  store         Create, attach, detach and change archive stores.\n'
    '  user          Accounts that may use the Administration API and their...\n'
    '  verify        Re-read every record and check catalog and index against...\n'
    "  verify-proof  Check a proof with the public key alone: a message's (a...\n"
)
