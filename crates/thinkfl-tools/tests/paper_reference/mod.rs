//! Expected outputs of the paper's tool server logic (Flask `jsonify` of pandas records; the
//! pandas n-sigma table), produced by running that logic with pandas 3.1.1, numpy 2.4.6 and
//! Flask 3.1.3 on the same rows: the fixture's `trace_jaeger-span.csv`, and
//! `tests/data/paper_metrics.csv` in the paper's preprocessed layout
//! (`timestamp,node_id,service_name,kpi_name,value`).

/// (parent_span_id, body)
pub const TRACES: &[(&str, &str)] = &[
    (
        "d1b3f238e544e3f0",
        r##"[{"cmdb_id":"frontend-2","duration":6733,"operation_name":"hipstershop.ProductCatalogService/GetProduct","parent_span":"d1b3f238e544e3f0","span_id":"ed794292138f3a8d","status_code":"0","timestamp":1647747354043,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"},{"cmdb_id":"frontend-2","duration":5677,"operation_name":"hipstershop.ProductCatalogService/GetProduct","parent_span":"d1b3f238e544e3f0","span_id":"0537acbf70acd7ab","status_code":"0","timestamp":1647747354055,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"},{"cmdb_id":"frontend-2","duration":5987,"operation_name":"hipstershop.ProductCatalogService/GetProduct","parent_span":"d1b3f238e544e3f0","span_id":"fd645f9fb5de1c44","status_code":"0","timestamp":1647747354067,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"},{"cmdb_id":"frontend-2","duration":13334400,"operation_name":"hipstershop.RecommendationService/ListRecommendations","parent_span":"d1b3f238e544e3f0","span_id":"a21065d052ec52ab","status_code":"0","timestamp":1647747340708,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"},{"cmdb_id":"frontend-2","duration":5977,"operation_name":"hipstershop.ProductCatalogService/GetProduct","parent_span":"d1b3f238e544e3f0","span_id":"18877eb55ba2cbdf","status_code":"0","timestamp":1647747354049,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"},{"cmdb_id":"frontend-2","duration":5950,"operation_name":"hipstershop.ProductCatalogService/GetProduct","parent_span":"d1b3f238e544e3f0","span_id":"dd7d6f6c29b23fe3","status_code":"0","timestamp":1647747354061,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"},{"cmdb_id":"frontend-2","duration":7473,"operation_name":"hipstershop.ProductCatalogService/GetProduct","parent_span":"d1b3f238e544e3f0","span_id":"ae2ac27c7185de23","status_code":"0","timestamp":1647747340693,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"},{"cmdb_id":"frontend-2","duration":2831,"operation_name":"hipstershop.CurrencyService/GetSupportedCurrencies","parent_span":"d1b3f238e544e3f0","span_id":"fd7f6654ac6ca182","status_code":"0","timestamp":1647747340700,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"},{"cmdb_id":"frontend-2","duration":2628,"operation_name":"hipstershop.CurrencyService/Convert","parent_span":"d1b3f238e544e3f0","span_id":"da83491508dcba04","status_code":"0","timestamp":1647747340706,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"},{"cmdb_id":"frontend-2","duration":4696,"operation_name":"hipstershop.AdService/GetAds","parent_span":"d1b3f238e544e3f0","span_id":"7509c7a7927d3df9","status_code":"0","timestamp":1647747354073,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"},{"cmdb_id":"frontend-2","duration":2532,"operation_name":"hipstershop.CartService/GetCart","parent_span":"d1b3f238e544e3f0","span_id":"e733a8eadacc8f83","status_code":"0","timestamp":1647747340703,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"}]
"##,
    ),
    (
        "a21065d052ec52ab",
        r##"[{"cmdb_id":"recommendationservice-1","duration":13331066,"operation_name":"/hipstershop.RecommendationService/ListRecommendations","parent_span":"a21065d052ec52ab","span_id":"af4c664b25ed29e3","status_code":"0","timestamp":1647747340710,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":NaN}]
"##,
    ),
    (
        "af4c664b25ed29e3",
        r##"[{"cmdb_id":"recommendationservice-1","duration":13330351,"operation_name":"/hipstershop.ProductCatalogService/ListProducts","parent_span":"af4c664b25ed29e3","span_id":"125b4bbe94d27a47","status_code":"0","timestamp":1647747340710,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":NaN}]
"##,
    ),
    (
        "125b4bbe94d27a47",
        r##"[{"cmdb_id":"productcatalogservice-1","duration":30,"operation_name":"hipstershop.ProductCatalogService/ListProducts","parent_span":"125b4bbe94d27a47","span_id":"025a8665c0c59c04","status_code":"0","timestamp":1647747354038,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"rpc"}]
"##,
    ),
    (
        "025a8665c0c59c04",
        r##"{"message":"No trace with parent_span = '025a8665c0c59c04'\u3002"}
"##,
    ),
    (
        "e733a8eadacc8f83",
        r##"[{"cmdb_id":"cartservice-2","duration":0,"operation_name":"/hipstershop.CartService/GetCart","parent_span":"e733a8eadacc8f83","span_id":"f11f9febb3737f4e","status_code":"200","timestamp":1647747340704,"trace_id":"ae265c5b07acfe6cb3548eb855aa1357","type":"http"}]
"##,
    ),
];

/// (service_name, timestamp, body)
pub const METRICS: &[(&str, &str, &str)] = &[
    (
        "cartservice-2",
        "1647747340",
        r##"key,regular_mean,regular_std_dev,current_mean,current_std_dev
node-6.cartservice-2.container_cpu_usage_seconds,0.47,0.33,0.52,0.45
node-6.cartservice-2.container_network_receive_MB.eth0,1.44,1.76,9.12,
"##,
    ),
    (
        "cartservice",
        "1647747340693",
        r##"key,regular_mean,regular_std_dev,current_mean,current_std_dev
node-5.cartservice-1.container_cpu_usage_seconds,0.3,0.05,0.29,0.07
node-6.cartservice-2.container_cpu_usage_seconds,0.47,0.33,0.52,0.45
node-6.cartservice-2.container_network_receive_MB.eth0,1.44,1.76,9.12,
"##,
    ),
    (
        "emailservice-0",
        "1647747340",
        r##"{"message":"No fluctuating metrics found."}
"##,
    ),
    (
        "cartservice-2",
        "1647847340",
        r##"{"message":"No matching records found."}
"##,
    ),
];
