"""bench's Hydra launchers: `hydra/launcher=ray` (a sweep's configurations measured across a
Ray cluster) and `hydra/launcher=k8s_jobs` (a sweep written as Kubernetes Jobs). Here because
Hydra instantiates launchers only from the `hydra_plugins` namespace; the work is done in
`bench.cluster`."""
