"""Backups of one box: the database, recordings and config in one verifiable archive.

`service` holds the three operations behind `reautoctl backup create | verify | restore`;
`archive` the tar layout and its manifest; `database` the per-backend dump, check and restore.
Credentials are never backed up (`archive.EXCLUDED` says what is left out and why).
"""
