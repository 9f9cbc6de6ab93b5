"""How a job's code talks to the worker that runs it, without any connection of its own."""

# A line on the job's standard output that starts with this prefix, followed by a JobProgress as
# JSON, is turned by the worker into a job.progress event instead of a log line.
PROGRESS_LINE_PREFIX = "::theodolite-progress:: "

# The worker names a file in this variable; a failing graph writes there which step failed and
# why, so the job's terminal event can say so.
RESULT_FILE_ENV = "THEODOLITE_RESULT_FILE"

# The worker names the plugin versions a job was pinned to: JSON {name: {"path", "version"}},
# each path an unpacked wheel. ``theodolite run-graph`` imports exactly those.
PLUGINS_ENV = "THEODOLITE_PLUGINS"
