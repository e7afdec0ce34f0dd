"""Capacity planning: from stored measurements to servers of a catalog, with the scaling model
and its assumptions stated (`bench.capacity.scaling.FORMULA`). A pure function of stored
results, target, catalog and prices: nothing here measures.

Modules: `catalog` (servers, prices), `measured` (what the results say per host and
configuration), `scaling`, `queueing`, `planner` (sizing, recommendation), `serverless`
(costs, break-even), `manifests`, `tables`, `plan` (results folder in, plan out) and `store`
(the plan folder's layout). This package's own import loads none of them, so a reader of plans
(`bench.capacity.store`) imports no more than it needs.
"""
