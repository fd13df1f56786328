"""How a jail is built and driven from the host: policy, seccomp, bubblewrap, cgroups and
the jailed process itself.  Knows nothing of languages' conventions or front-ends."""
