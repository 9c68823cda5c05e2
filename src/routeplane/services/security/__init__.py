"""Who may do what and reach whom: the built-in identity (tokens, roles), security
groups and their rules."""
