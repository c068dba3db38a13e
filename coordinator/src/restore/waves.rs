//! Foreign-key waves for a restore. Tables form a graph with an edge from each referenced table
//! to each table referencing it; strongly connected components (FK cycles, self-references)
//! load together, and a component waits for every component it references.

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::BTreeSet;

/// A foreign key between two tables of the restore, by table index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FkEdge {
    pub referencing: usize,
    pub referenced: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waves {
    /// `waves[w]` = tables (indices) loading in wave `w`, sorted.
    pub waves: Vec<Vec<usize>>,
    /// Per table: the tables it must wait for (every member of every component it references,
    /// directly or not), sorted. Peers in its own cycle are not included: they load together.
    pub depends_on: Vec<Vec<usize>>,
    /// Indices into the input edges that lie inside a component (cycle edges, self-references):
    /// those constraints cannot hold while loading and are dropped and re-added around the load.
    pub cycle_edges: Vec<usize>,
}

pub fn plan_waves(tables: usize, edges: &[FkEdge]) -> Waves {
    let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(tables, edges.len());
    let nodes: Vec<NodeIndex> = (0..tables).map(|t| g.add_node(t)).collect();
    for e in edges {
        g.add_edge(nodes[e.referenced], nodes[e.referencing], ());
    }
    // Component id per table.
    let sccs = tarjan_scc(&g);
    let mut comp = vec![0usize; tables];
    for (c, members) in sccs.iter().enumerate() {
        for n in members {
            comp[g[*n]] = c;
        }
    }
    let cycle_edges: Vec<usize> = edges
        .iter()
        .enumerate()
        .filter(|(_, e)| comp[e.referencing] == comp[e.referenced])
        .map(|(i, _)| i)
        .collect();

    // Direct predecessor components of each component.
    let mut preds: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); sccs.len()];
    for e in edges {
        let (from, to) = (comp[e.referenced], comp[e.referencing]);
        if from != to {
            preds[to].insert(from);
        }
    }
    // Wave = longest chain of predecessors; memoised depth-first (the condensation is a DAG).
    let mut wave: Vec<Option<usize>> = vec![None; sccs.len()];
    fn depth(c: usize, preds: &[BTreeSet<usize>], wave: &mut Vec<Option<usize>>) -> usize {
        if let Some(w) = wave[c] {
            return w;
        }
        let w = preds[c]
            .iter()
            .map(|&p| depth(p, preds, wave) + 1)
            .max()
            .unwrap_or(0);
        wave[c] = Some(w);
        w
    }
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (t, &c) in comp.iter().enumerate() {
        let w = depth(c, &preds, &mut wave);
        if waves.len() <= w {
            waves.resize(w + 1, Vec::new());
        }
        waves[w].push(t);
    }
    // Transitive closure of predecessor components, expanded to tables.
    let mut depends_on = Vec::with_capacity(tables);
    for &c in &comp {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = preds[c].iter().copied().collect();
        while let Some(c) = stack.pop() {
            if seen.insert(c) {
                stack.extend(preds[c].iter().copied());
            }
        }
        let mut deps: Vec<usize> = (0..tables).filter(|&u| seen.contains(&comp[u])).collect();
        deps.sort_unstable();
        depends_on.push(deps);
    }
    Waves {
        waves,
        depends_on,
        cycle_edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(referencing: usize, referenced: usize) -> FkEdge {
        FkEdge {
            referencing,
            referenced,
        }
    }

    #[test]
    fn chain_loads_in_order() {
        // 2 -> 1 -> 0 (2 references 1 references 0)
        let w = plan_waves(3, &[e(2, 1), e(1, 0)]);
        assert_eq!(w.waves, vec![vec![0], vec![1], vec![2]]);
        assert_eq!(w.depends_on, vec![vec![], vec![0], vec![0, 1]]);
        assert!(w.cycle_edges.is_empty());
    }

    #[test]
    fn bench_db_shape() {
        // 0 departments, 1 employees, 2 customers, 3 orders, 4 order_items, 5 products, 6 events
        let edges = [
            e(1, 0), // employees.dept_id -> departments
            e(1, 1), // employees.manager_id -> employees (self)
            e(0, 1), // departments.head_id -> employees (cycle)
            e(2, 1), // customers.rep_id -> employees
            e(3, 2), // orders -> customers
            e(4, 3), // order_items -> orders
            e(4, 5), // order_items -> products
        ];
        let w = plan_waves(7, &edges);
        assert_eq!(w.waves, vec![vec![0, 1, 5, 6], vec![2], vec![3], vec![4]]);
        assert_eq!(w.cycle_edges, vec![0, 1, 2]);
        assert_eq!(
            w.depends_on[0],
            Vec::<usize>::new(),
            "cycle peers are not dependencies"
        );
        assert_eq!(w.depends_on[4], vec![0, 1, 2, 3, 5]);
    }

    #[test]
    fn multi_table_cycle_waits_for_its_inputs() {
        // 0 <- (1 <-> 2) <- 3 ; 2 also references 0
        let w = plan_waves(4, &[e(1, 2), e(2, 1), e(2, 0), e(3, 1)]);
        assert_eq!(w.waves, vec![vec![0], vec![1, 2], vec![3]]);
        assert_eq!(w.depends_on[1], vec![0]);
        assert_eq!(w.depends_on[3], vec![0, 1, 2]);
        assert_eq!(w.cycle_edges, vec![0, 1]);
    }

    #[test]
    fn no_tables_no_waves() {
        let w = plan_waves(0, &[]);
        assert!(w.waves.is_empty());
    }
}
