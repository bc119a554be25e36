//! Fault cases (ground truth) and root causes (predictions).

use crate::Level;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The 15 fault types of the AIOps 2022 data set, and two code-level faults as in RCAEval's RE3
/// (an exception thrown in a service's code, an error response), which the simulator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultType {
    /// `k8s容器cpu负载`: CPU stress in one pod.
    ContainerCpuLoad,
    /// `k8s容器内存负载`: memory stress in one pod.
    ContainerMemoryLoad,
    /// `k8s容器网络延迟`: added network latency on one pod's interface.
    ContainerNetworkDelay,
    /// `k8s容器网络丢包`: packet loss on one pod's interface.
    ContainerPacketLoss,
    /// `k8s容器网络资源包损坏`: corrupted packets on one pod's interface.
    ContainerPacketCorruption,
    /// `k8s容器网络资源包重复发送`: duplicated packets on one pod's interface.
    ContainerPacketDuplication,
    /// `k8s容器读io负载`: disk read load in one pod.
    ContainerReadIoLoad,
    /// `k8s容器写io负载`: disk write load in one pod.
    ContainerWriteIoLoad,
    /// `k8s容器进程中止`: the pod's process is killed.
    ContainerProcessKill,
    /// `node节点CPU故障`: a CPU fault on a node.
    NodeCpuFault,
    /// `node节点CPU爬升`: a node's CPU use climbing.
    NodeCpuClimb,
    /// `node 内存消耗`: memory consumption on a node.
    NodeMemory,
    /// `node 磁盘读IO消耗`: disk read IO on a node.
    NodeDiskReadIo,
    /// `node 磁盘写IO消耗`: disk write IO on a node.
    NodeDiskWriteIo,
    /// `node 磁盘空间消耗`: disk space filling on a node.
    NodeDiskSpace,
    /// A code-level fault: one operation of the service throws an exception on part of its
    /// requests (stack traces in the pod's logs, error status on its spans).
    CodeException,
    /// A code-level fault: the service answers part of its requests with an error response
    /// (a one-line error log, error status on its spans).
    ErrorResponse,
}

impl FaultType {
    /// Every fault type: the 15 of AIOps 2022, then the code-level ones.
    pub const ALL: [FaultType; 17] = [
        FaultType::ContainerCpuLoad,
        FaultType::ContainerMemoryLoad,
        FaultType::ContainerNetworkDelay,
        FaultType::ContainerPacketLoss,
        FaultType::ContainerPacketCorruption,
        FaultType::ContainerPacketDuplication,
        FaultType::ContainerReadIoLoad,
        FaultType::ContainerWriteIoLoad,
        FaultType::ContainerProcessKill,
        FaultType::NodeCpuFault,
        FaultType::NodeCpuClimb,
        FaultType::NodeMemory,
        FaultType::NodeDiskReadIo,
        FaultType::NodeDiskWriteIo,
        FaultType::NodeDiskSpace,
        FaultType::CodeException,
        FaultType::ErrorResponse,
    ];

    /// The code-level fault types (RCAEval RE3-like), not in AIOps 2022.
    pub const CODE_LEVEL: [FaultType; 2] = [FaultType::CodeException, FaultType::ErrorResponse];

    /// The 15 fault types of the AIOps 2022 data set.
    pub const AIOPS_2022: [FaultType; 15] = [
        FaultType::ContainerCpuLoad,
        FaultType::ContainerMemoryLoad,
        FaultType::ContainerNetworkDelay,
        FaultType::ContainerPacketLoss,
        FaultType::ContainerPacketCorruption,
        FaultType::ContainerPacketDuplication,
        FaultType::ContainerReadIoLoad,
        FaultType::ContainerWriteIoLoad,
        FaultType::ContainerProcessKill,
        FaultType::NodeCpuFault,
        FaultType::NodeCpuClimb,
        FaultType::NodeMemory,
        FaultType::NodeDiskReadIo,
        FaultType::NodeDiskWriteIo,
        FaultType::NodeDiskSpace,
    ];

    /// `failure_type` exactly as the data set writes it.
    pub fn data_name(self) -> &'static str {
        use FaultType::*;
        match self {
            ContainerCpuLoad => "k8s容器cpu负载",
            ContainerMemoryLoad => "k8s容器内存负载",
            ContainerNetworkDelay => "k8s容器网络延迟",
            ContainerPacketLoss => "k8s容器网络丢包",
            ContainerPacketCorruption => "k8s容器网络资源包损坏",
            ContainerPacketDuplication => "k8s容器网络资源包重复发送",
            ContainerReadIoLoad => "k8s容器读io负载",
            ContainerWriteIoLoad => "k8s容器写io负载",
            ContainerProcessKill => "k8s容器进程中止",
            NodeCpuFault => "node节点CPU故障",
            NodeCpuClimb => "node节点CPU爬升",
            NodeMemory => "node 内存消耗",
            NodeDiskReadIo => "node 磁盘读IO消耗",
            NodeDiskWriteIo => "node 磁盘写IO消耗",
            NodeDiskSpace => "node 磁盘空间消耗",
            // Not in AIOps 2022: written in English.
            CodeException => "code exception",
            ErrorResponse => "error response",
        }
    }

    /// English name for display.
    pub fn english(self) -> &'static str {
        use FaultType::*;
        match self {
            ContainerCpuLoad => "container CPU load",
            ContainerMemoryLoad => "container memory load",
            ContainerNetworkDelay => "container network delay",
            ContainerPacketLoss => "container packet loss",
            ContainerPacketCorruption => "container packet corruption",
            ContainerPacketDuplication => "container packet duplication",
            ContainerReadIoLoad => "container read IO load",
            ContainerWriteIoLoad => "container write IO load",
            ContainerProcessKill => "container process kill",
            NodeCpuFault => "node CPU fault",
            NodeCpuClimb => "node CPU climb",
            NodeMemory => "node memory consumption",
            NodeDiskReadIo => "node disk read IO",
            NodeDiskWriteIo => "node disk write IO",
            NodeDiskSpace => "node disk space",
            CodeException => "code exception",
            ErrorResponse => "error response",
        }
    }

    /// The kebab-case identifier (`container-cpu-load`), as used in configs and reports.
    pub fn slug(self) -> &'static str {
        use FaultType::*;
        match self {
            ContainerCpuLoad => "container-cpu-load",
            ContainerMemoryLoad => "container-memory-load",
            ContainerNetworkDelay => "container-network-delay",
            ContainerPacketLoss => "container-packet-loss",
            ContainerPacketCorruption => "container-packet-corruption",
            ContainerPacketDuplication => "container-packet-duplication",
            ContainerReadIoLoad => "container-read-io-load",
            ContainerWriteIoLoad => "container-write-io-load",
            ContainerProcessKill => "container-process-kill",
            NodeCpuFault => "node-cpu-fault",
            NodeCpuClimb => "node-cpu-climb",
            NodeMemory => "node-memory",
            NodeDiskReadIo => "node-disk-read-io",
            NodeDiskWriteIo => "node-disk-write-io",
            NodeDiskSpace => "node-disk-space",
            CodeException => "code-exception",
            ErrorResponse => "error-response",
        }
    }

    /// Node faults are injected on nodes; container faults on a pod or every pod of a service.
    pub fn is_node_fault(self) -> bool {
        matches!(
            self,
            FaultType::NodeCpuFault
                | FaultType::NodeCpuClimb
                | FaultType::NodeMemory
                | FaultType::NodeDiskReadIo
                | FaultType::NodeDiskWriteIo
                | FaultType::NodeDiskSpace
        )
    }

    /// Code-level faults act on a service's (or one pod's) code, not on its resources.
    pub fn is_code_fault(self) -> bool {
        matches!(self, FaultType::CodeException | FaultType::ErrorResponse)
    }

    /// Whether the type is one of the 15 of AIOps 2022.
    pub fn is_aiops_2022(self) -> bool {
        !self.is_code_fault()
    }
}

impl fmt::Display for FaultType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.english())
    }
}

impl FromStr for FaultType {
    type Err = crate::Error;
    /// Accepts the data set's name, the English name or the slug.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        FaultType::ALL
            .into_iter()
            .find(|f| {
                f.data_name() == t
                    || f.english().eq_ignore_ascii_case(t)
                    || f.slug().eq_ignore_ascii_case(t)
            })
            .ok_or_else(|| crate::Error::UnknownFaultType(s.to_string()))
    }
}

/// One ground-truth row (`groundtruth.csv`: `timestamp,level,cmdb_id,failure_type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FaultCase {
    /// Fault start, seconds since the epoch.
    pub timestamp: i64,
    /// The level the fault was injected at (node, service or pod).
    pub level: Level,
    /// The faulty node, service or pod.
    pub cmdb_id: String,
    /// `failure_type` as written in the data (kept verbatim so unknown types survive a round trip).
    pub failure_type: String,
    /// Fault duration in seconds when known (the simulator knows it; the data set does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
}

impl FaultCase {
    /// The parsed fault type, if it is a known one (the 15 of AIOps 2022 or a code-level one).
    pub fn fault_type(&self) -> Option<FaultType> {
        self.failure_type.parse().ok()
    }

    /// Human-readable fault type name.
    pub fn display_type(&self) -> String {
        self.fault_type()
            .map(|f| f.english().to_string())
            .unwrap_or_else(|| self.failure_type.clone())
    }
}

/// One predicted root cause, as `print_results` takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RootCause {
    /// The node of the root cause, if the answer names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The service of the root cause, if the answer names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The pod of the root cause, if the answer names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The model's free-text reason; not graded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RootCause {
    /// The field of this root cause at `level`.
    pub fn at(&self, level: Level) -> Option<&str> {
        match level {
            Level::Node => self.node.as_deref(),
            Level::Service => self.service.as_deref(),
            Level::Pod => self.pod.as_deref(),
        }
    }

    /// The service this item points at: its `service`, else the service of its `pod`.
    pub fn service_or_pod_service(&self) -> Option<&str> {
        self.service
            .as_deref()
            .or_else(|| self.pod.as_deref().map(crate::service_of))
    }

    /// The components this item names, in node, service, pod order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        [
            self.node.as_deref(),
            self.service.as_deref(),
            self.pod.as_deref(),
        ]
        .into_iter()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_types_round_trip_every_spelling() {
        for f in FaultType::ALL {
            assert_eq!(f.data_name().parse::<FaultType>().unwrap(), f);
            assert_eq!(f.english().parse::<FaultType>().unwrap(), f);
            assert_eq!(f.slug().parse::<FaultType>().unwrap(), f);
        }
        assert!("k8s".parse::<FaultType>().is_err());
        assert_eq!(
            FaultType::ALL.iter().filter(|f| f.is_node_fault()).count(),
            6
        );
        // The code-level types parse back from the English `failure_type` the simulator writes.
        assert_eq!(
            "code exception".parse::<FaultType>().unwrap(),
            FaultType::CodeException
        );
        assert_eq!(
            "error response".parse::<FaultType>().unwrap(),
            FaultType::ErrorResponse
        );
        let aiops: Vec<FaultType> = FaultType::ALL
            .into_iter()
            .filter(|f| f.is_aiops_2022())
            .collect();
        assert_eq!(aiops, FaultType::AIOPS_2022);
        let code: Vec<FaultType> = FaultType::ALL
            .into_iter()
            .filter(|f| f.is_code_fault())
            .collect();
        assert_eq!(code, FaultType::CODE_LEVEL);
        assert!(FaultType::CODE_LEVEL.iter().all(|f| !f.is_node_fault()));
    }
}
