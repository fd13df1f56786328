"""The language runtimes on the host side: Python fork servers and their children, and
single-use Deno jails.  Each yields `JailedProcess` workers for the pools."""
