//! Watching a run learn the teacher's decisions rather than its marginal answer.
//!
//! A loss curve cannot tell a policy that reads the evidence from one that always names the
//! teacher's most frequent answer: both lower the loss. So every few steps the policy plays a
//! fixed handful of questions greedily, as inference does, the scripted expert plays the same
//! questions, and the two episodes are compared decision by decision: the first tool, the spans
//! descended into, the top pod and its node, the number of items, and whether the answer is
//! right. On training questions this shows how much of the teacher it has absorbed; on held-out
//! questions, how much of that generalizes.

use serde::{Deserialize, Serialize};
use thinkfl_core::Trajectory;
use thinkfl_grader::{GraderConfig, grade};
use thinkfl_store::TelemetryStore;

/// The decisions of one episode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    /// The first tool called.
    pub first_tool: Option<String>,
    /// `parent_span_id`s of the `search_traces` calls, in order.
    pub spans: Vec<String>,
    /// The pod of the first answer item.
    pub top_pod: Option<String>,
    /// The node of the first answer item.
    pub top_node: Option<String>,
    /// Items in the final answer.
    pub items: usize,
}

impl Decisions {
    /// The decisions of `t`, from its valid calls and its final answer.
    pub fn of(t: &Trajectory) -> Self {
        let calls: Vec<_> = t
            .calls
            .iter()
            .filter(|c| c.valid)
            .filter_map(|c| c.call.as_ref())
            .collect();
        let spans = calls
            .iter()
            .filter(|c| c.name == "search_traces")
            .filter_map(|c| c.arguments.get("parent_span_id")?.as_str())
            .map(str::to_string)
            .collect();
        let pred = t.prediction.as_deref().unwrap_or_default();
        Decisions {
            first_tool: calls.first().map(|c| c.name.clone()),
            spans,
            top_pod: pred.first().and_then(|r| r.pod.clone()),
            top_node: pred.first().and_then(|r| r.node.clone()),
            items: pred.len(),
        }
    }
}

/// Shares (0..1) of questions on which the policy made the teacher's decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Questions compared.
    pub questions: usize,
    /// The same first tool.
    pub first_tool: f64,
    /// The same spans in the same order.
    pub spans: f64,
    /// The same top pod.
    pub top_pod: f64,
    /// The same top node.
    pub top_node: f64,
    /// The same number of answer items.
    pub items: f64,
    /// The policy's answer is right (first item matches the ground truth).
    pub right: f64,
    /// The teacher's answer is right.
    pub teacher_right: f64,
    /// How many distinct top pods the policy named: 1 on many questions is the marginal.
    pub distinct_top_pods: usize,
}

/// Compares policy and teacher episodes on the same questions (same order) of `store`.
pub fn agreement(
    store: &TelemetryStore,
    policy: &[Trajectory],
    teacher: &[Trajectory],
) -> Agreement {
    let gcfg = GraderConfig::default();
    let mut a = Agreement::default();
    let mut tops = std::collections::BTreeSet::new();
    for (p, t) in policy.iter().zip(teacher) {
        let (dp, dt) = (Decisions::of(p), Decisions::of(t));
        a.questions += 1;
        let same = |x: bool| if x { 1.0 } else { 0.0 };
        a.first_tool += same(dp.first_tool == dt.first_tool);
        a.spans += same(dp.spans == dt.spans);
        a.top_pod += same(dp.top_pod.is_some() && dp.top_pod == dt.top_pod);
        a.top_node += same(dp.top_node.is_some() && dp.top_node == dt.top_node);
        a.items += same(dp.items == dt.items);
        let right = |tr: &Trajectory| {
            tr.case
                .and_then(|c| store.faults().get(c))
                .is_some_and(|f| grade(&gcfg, tr, f).rank == Some(0))
        };
        a.right += same(right(p));
        a.teacher_right += same(right(t));
        if let Some(pod) = dp.top_pod {
            tops.insert(pod);
        }
    }
    a.distinct_top_pods = tops.len();
    a
}

impl Agreement {
    /// Pools agreements of several data sets, weighting by questions.
    pub fn pool(parts: &[Agreement]) -> Agreement {
        let n: usize = parts.iter().map(|a| a.questions).sum();
        let mut out = Agreement {
            questions: n,
            distinct_top_pods: parts.iter().map(|a| a.distinct_top_pods).sum(),
            ..Default::default()
        };
        if n == 0 {
            return out;
        }
        for a in parts {
            out.first_tool += a.first_tool;
            out.spans += a.spans;
            out.top_pod += a.top_pod;
            out.top_node += a.top_node;
            out.items += a.items;
            out.right += a.right;
            out.teacher_right += a.teacher_right;
        }
        let nf = n as f64;
        for v in [
            &mut out.first_tool,
            &mut out.spans,
            &mut out.top_pod,
            &mut out.top_node,
            &mut out.items,
            &mut out.right,
            &mut out.teacher_right,
        ] {
            *v /= nf;
        }
        out
    }

    /// One line for the terminal.
    pub fn summary(&self) -> String {
        format!(
            "{} q: tool {:.0}%, spans {:.0}%, top pod {:.0}%, node {:.0}%, items {:.0}%, right {:.0}% (teacher {:.0}%), {} distinct top pods",
            self.questions,
            self.first_tool * 100.0,
            self.spans * 100.0,
            self.top_pod * 100.0,
            self.top_node * 100.0,
            self.items * 100.0,
            self.right * 100.0,
            self.teacher_right * 100.0,
            self.distinct_top_pods
        )
    }
}

/// Evenly spaced picks of `n` items out of `len` (all when `n >= len`): the same questions at
/// every watch, spread over the data.
pub fn spread(len: usize, n: usize) -> Vec<usize> {
    if n >= len {
        return (0..len).collect();
    }
    (0..n).map(|i| i * len / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use thinkfl_core::{CallRecord, RootCause, ToolCall};

    fn traj(first: &str, spans: &[&str], pods: &[&str]) -> Trajectory {
        let mut calls = vec![CallRecord {
            call: Some(ToolCall {
                name: first.into(),
                arguments: serde_json::json!({}),
            }),
            raw: String::new(),
            valid: true,
            error: None,
        }];
        for s in spans {
            calls.push(CallRecord {
                call: Some(ToolCall {
                    name: "search_traces".into(),
                    arguments: serde_json::json!({ "parent_span_id": s }),
                }),
                raw: String::new(),
                valid: true,
                error: None,
            });
        }
        Trajectory {
            calls,
            prediction: Some(
                pods.iter()
                    .map(|p| RootCause {
                        pod: Some(p.to_string()),
                        node: Some(format!("node-of-{p}")),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn decisions_compared_one_by_one() {
        let store = TelemetryStore::from_dataset(Default::default());
        let teacher = [
            traj("search_anomalous_components", &["a", "b"], &["x", "y"]),
            traj("search_anomalous_components", &["c"], &["z"]),
        ];
        let policy = [
            traj("search_anomalous_components", &["a", "b"], &["x"]),
            traj("search_traces", &["c"], &["x"]),
        ];
        let a = agreement(&store, &policy, &teacher);
        assert_eq!(a.questions, 2);
        assert_eq!(a.first_tool, 1.0);
        assert_eq!(a.spans, 2.0);
        assert_eq!(a.top_pod, 1.0);
        assert_eq!(a.top_node, 1.0);
        // Two items against one, then one against one.
        assert_eq!(a.items, 1.0);
        // The marginal answer shows as one distinct top pod.
        assert_eq!(a.distinct_top_pods, 1);
        let pooled = Agreement::pool(&[a.clone(), a]);
        assert_eq!(pooled.questions, 4);
        assert_eq!(pooled.spans, 1.0);
        assert_eq!(pooled.top_pod, 0.5);
        assert_eq!(pooled.items, 0.5);
    }

    #[test]
    fn spread_is_even_and_bounded() {
        assert_eq!(spread(10, 3), vec![0, 3, 6]);
        assert_eq!(spread(2, 5), vec![0, 1]);
        assert!(spread(0, 4).is_empty());
    }
}
