"""`hydra/launcher=ray`: a Hydra sweep's configurations measured across a Ray cluster
(`bench.cluster.ray_sweep`). Here, because Hydra instantiates launchers only from the
`hydra_plugins` namespace."""
