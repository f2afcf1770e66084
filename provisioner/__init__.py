"""provisioner: stand up highly available Kubernetes-style clusters on real machines.

`infra/` decides where machines come from, `configure/` how they are configured, and
`controlplane/` is what runs on them.
"""
