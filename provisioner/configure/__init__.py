"""How machines are configured: pure renderers of configuration (etcd flags, haproxy.cfg, ...) shared by
`provision dev` (processes on this host) and the Ansible roles (real masters), plus the orchestration of roles/.

Renderers take frozen values and return text or argument lists; they never touch the filesystem or network.
"""
