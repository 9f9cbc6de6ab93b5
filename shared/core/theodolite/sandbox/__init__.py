"""Containment for untrusted code: each job and each plugin validation in a sandbox of its own.

Two ways in, one policy (`policy.SandboxPolicy`):

- `bwrap.bwrap_command` wraps a command line in bubblewrap (cold commands, plugin validation);
- `enter.enter_sandbox` turns a freshly forked child (the warm pool) into the sandbox itself.

Both give the code its own uid, private mount, PID, network, IPC and UTS namespaces, a root that
shows only the policy's paths (the work folder writable, the rest read-only), an allow-listed
environment (`environment.sandbox_environment`) and rlimits; `cgroups.JobCgroup` adds memory and
process limits the kernel enforces for the whole tree, and `probe.probe_isolation` says what the
host allows. Nothing here is imported by this package's `__init__`, so the warm pool's
forkserver can import `theodolite.sandbox.enter` alone (stdlib only).
"""
