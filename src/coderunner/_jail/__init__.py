"""Code that runs INSIDE the jail (standard library and Deno only) and the protocol the
host speaks with it.  This folder is mounted read-only in every jail."""
