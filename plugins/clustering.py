"""Space builder ``clusters``: Louvain communities and an average-linkage tree of each space,
and their agreement with the tasks' labels."""
from __future__ import annotations

from typing import Any

import numpy as np

from lingspace_harness import AnalysisContext, DataError, cluster_agreement, hookimpl, symmetrise

LABEL_KINDS = ("phenomenon", "group", "field")
#: Negative similarities become weight 0 (no edge) in the graph Louvain runs on.
NEGATIVE_POLICY = "clip"


def graph_of(tasks: list[str], sim: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """A networkx graph with an edge of weight ``max(sim, 0)`` for each positive pair, and how
    many pairs were negative (clipped to 0) and the smallest value."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(tasks)
    rows, cols = np.triu_indices(len(tasks), 1)
    values = sim[rows, cols]
    for i, j, w in zip(rows, cols, values):
        if w > 0:
            graph.add_edge(tasks[i], tasks[j], weight=float(w))
    negative = values[values < 0]
    return graph, {"policy": NEGATIVE_POLICY, "count": int(negative.size),
                   "min": float(negative.min()) if negative.size else None}


def louvain(graph: Any, tasks: list[str], seed: int) -> tuple[dict[str, int], float | None]:
    """Seeded Louvain communities, numbered by their first task in ``tasks`` order, and their
    modularity (None for a graph without edges, where every task is its own community)."""
    import networkx as nx

    if graph.number_of_edges() == 0:
        return {t: i for i, t in enumerate(tasks)}, None
    found = nx.community.louvain_communities(graph, weight="weight", seed=seed)
    position = {t: i for i, t in enumerate(tasks)}
    found = sorted(found, key=lambda c: min(position[t] for t in c))
    communities = {t: k for k, members in enumerate(found) for t in members}
    return {t: communities[t] for t in tasks}, float(nx.community.modularity(graph, found, weight="weight"))


def distances(sim: np.ndarray) -> tuple[np.ndarray, str]:
    """``1 - similarity`` for a self-similarity space (unit diagonal, nothing above 1: cosine,
    Jaccard, CKA), else ``max - similarity`` over the off-diagonal entries (e.g. transfer)."""
    off = sim[~np.eye(len(sim), dtype=bool)]
    if np.allclose(np.diag(sim), 1.0) and off.max() <= 1 + 1e-9:
        dist, how = 1.0 - sim, "1 - similarity"
    else:
        dist, how = off.max() - sim, "max - similarity"
    dist = np.clip(dist, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    return dist, how


def cluster_space(tasks: list[str], matrix: Any, results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    sim = np.array(matrix, dtype=float)
    if sim.shape != (len(tasks), len(tasks)):
        raise DataError(f"results.json: a space over {len(tasks)} tasks has a {sim.shape} matrix")
    sim = symmetrise(sim)
    out: dict[str, Any] = {"order": list(tasks), "linkage": [], "communities": {}, "modularity": None,
                           "negative_weights": None, "agreement": {}}
    if len(tasks) < 3:
        return {**out, "reason": f"{len(tasks)} tasks; clustering needs 3"}
    if np.isnan(sim[~np.eye(len(tasks), dtype=bool)]).any():
        return {**out, "reason": "the space has missing entries"}
    o = ctx.options
    graph, negative = graph_of(tasks, sim)
    communities, modularity = louvain(graph, tasks, o.seed)
    dist, how = distances(sim)
    condensed = squareform(dist, checks=False)
    tree = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    agreement = {}
    info = results.get("tasks", {})
    for kind in LABEL_KINDS:
        labels = [info.get(t, {}).get(kind) for t in tasks]
        keep = [i for i, v in enumerate(labels) if v is not None]
        truth = [labels[i] for i in keep]
        k = len(set(truth))
        if not 2 <= k < len(truth):  # one label, or every task its own: nothing to agree with
            continue
        cut = fcluster(tree, t=k, criterion="maxclust")
        agreement[kind] = {
            "louvain": cluster_agreement(truth, [communities[tasks[i]] for i in keep],
                                         permutations=o.permutations, seed=o.seed),
            "hierarchical": {"clusters": k, **cluster_agreement(truth, [int(cut[i]) for i in keep],
                                                                permutations=o.permutations, seed=o.seed)},
        }
    return {"order": [tasks[i] for i in leaves_list(tree)], "linkage": tree.tolist(), "distance": how,
            "communities": communities, "n_communities": len(set(communities.values())),
            "modularity": modularity, "negative_weights": negative, "agreement": agreement}


class Clusters:
    name = "clusters"
    description = ("Louvain communities (negative similarities clipped to 0) and an average-linkage tree "
                   "with optimal leaf order per space, with ARI/NMI against phenomenon, group and field")

    def build(self, results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
        return {metric: cluster_space(space["tasks"], space["matrix"], results, ctx)
                for metric, space in results.get("spaces", {}).items()}


@hookimpl
def lingspace_register_space_builders(register):
    register(Clusters())
