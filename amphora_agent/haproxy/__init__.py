"""HAProxy inside the amphora: config files, processes, reloads, runtime API."""
