"""The tools on top of the model: the `goruntime` command (main), the flags its
workload subcommands share (flags), text reports (report), contention profiles
and their pprof export (profile, pprof), mode comparisons (compare) and the
benchmark table (bench). The model (goruntime's own modules) never imports them."""
