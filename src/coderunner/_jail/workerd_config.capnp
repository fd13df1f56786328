# The config of one jailed workerd process (isolate mode), filled in by
# _runtimes/workerd.py: @HEAP_MB@ is V8's heap limit of every isolate, the snippet's
# memory_mb.  The socket is the Unix socket the host hands over (--socket-fd http=N); the
# paths below are inside the jail (this folder is mounted read-only at /runner).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "loader", worker = .loader) ],
  sockets = [ (name = "http", address = "unix:/nonexistent", http = (), service = "loader") ],
  # (Only the heap limit: any other V8 flag, e.g. --stack-size, fails the check of
  # workerd's per-isolate bootstrap code cache, and every isolate then compiles it anew.)
  v8Flags = [ "--max-old-space-size=@HEAP_MB@" ],
);

# The loader has one binding, the Worker Loader; it reaches nothing else (no network
# service is configured at all), and the isolates it loads get no bindings.
const loader :Workerd.Worker = (
  modules = [
    (name = "workerd_loader.mjs", esModule = embed "/runner/workerd_loader.mjs"),
    (name = "workerd_conventions.mjs", esModule = embed "/runner/workerd_conventions.mjs"),
    (name = "runner-source", text = embed "/runner/workerd_runner.mjs"),
    (name = "conventions-source", text = embed "/runner/workerd_conventions.mjs"),
  ],
  compatibilityDate = "2025-06-01",
  compatibilityFlags = ["experimental"],
  bindings = [ (name = "LOADER", workerLoader = ()) ],
);
