"""Who may do what: users, roles, sessions and electronic signatures (21 CFR Part 11), in the core.

``users`` holds the user book (scrypt passwords, lock-out, session timeouts, CI tokens); ``signatures``
the e-signatures bound to the hash of what was signed, and recipe releases. The CLI, the API and the
operator app all use these; nothing else decides a role.
"""
