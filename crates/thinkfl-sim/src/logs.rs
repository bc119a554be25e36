//! Log line templates. The Online Boutique lines copy the forms of the real AIOps 2022 sample
//! (`shared/fixtures/aiops2022-sample/log/all/logs.csv`): JSON loggers flattened to
//! `severity: info, message: ...`; raw console lines (the C# cart service's ASP.NET logger, the
//! Python tracebacks) lose their first character, exactly as the data set's collector did
//! (`etCartAsync called with userId=...`, `raceback (most recent call last):`).

use crate::model::{Lang, LogKind, Status};
use crate::rand_util::uuid;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The nine products of Online Boutique's catalog.
pub(crate) const PRODUCTS: [&str; 9] = [
    "OLJCESPC7Z",
    "66VCHSJNUP",
    "1YMWWN1N4O",
    "L9ECAV7KIM",
    "2ZYFJ3GM2N",
    "0PUK6V6EV0",
    "LS4PSXUNUM",
    "9SIQT8TOJO",
    "6E92ZMYYFZ",
];
const CURRENCIES: [&str; 4] = ["USD", "EUR", "CAD", "JPY"];
const CS_INFO: &str = "\u{1b}[40m\u{1b}[32minfo\u{1b}[39m\u{1b}[22m\u{1b}[49m: ";
const CS_FAIL: &str = "\u{1b}[41m\u{1b}[30mfail\u{1b}[39m\u{1b}[22m\u{1b}[49m: ";

/// Per-trace values that several services log (the user, the currency, the cart).
#[derive(Debug, Default)]
pub(crate) struct TraceCtx {
    pub user: Option<String>,
    pub currency: &'static str,
}

impl TraceCtx {
    fn user(&mut self, rng: &mut ChaCha8Rng) -> &str {
        if self.user.is_none() {
            self.user = Some(uuid(rng));
        }
        self.user.as_deref().expect("set above")
    }
}

/// A raw console line as the collector stored it: without its first character.
fn raw(s: &str) -> String {
    let mut c = s.chars();
    c.next();
    c.as_str().to_string()
}

fn sev(level: &str, msg: &str) -> String {
    format!("severity: {level}, message: {msg}")
}

/// Lines a server writes when it handles one request of `kind`; `status` is the outcome.
/// With `own_fault` the failure is the handler's own (a code-level fault, whose lines
/// [`exception_lines`] and [`error_response_line`] write): the lines that blame a dependency are
/// left out.
#[allow(clippy::too_many_arguments)]
pub(crate) fn server_lines(
    kind: LogKind,
    method: &str,
    status: Status,
    own_fault: bool,
    dur_ms: f64,
    ctx: &mut TraceCtx,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<String>,
) {
    use LogKind as K;
    let ok = status == Status::Ok;
    if ctx.currency.is_empty() {
        ctx.currency = CURRENCIES[rng.random_range(0..CURRENCIES.len())];
    }
    match kind {
        K::None => {}
        K::FrontendHome
        | K::FrontendProduct
        | K::FrontendViewCart
        | K::FrontendAddToCart
        | K::FrontendSetCurrency
        | K::FrontendCheckout => {
            out.push(sev("debug", "request started"));
            let (level, msg) = match kind {
                K::FrontendHome => ("info", "home"),
                K::FrontendProduct => ("debug", "serving product page"),
                K::FrontendViewCart => ("debug", "view user cart"),
                K::FrontendAddToCart => ("debug", "adding to cart"),
                K::FrontendSetCurrency => ("debug", "setting currency"),
                _ => ("debug", "placing order"),
            };
            out.push(sev(level, msg));
            if ok {
                if kind == K::FrontendCheckout {
                    out.push(sev("info", "order placed"));
                }
                out.push(sev("debug", "request complete"));
            } else {
                out.push(sev("error", "request error"));
            }
        }
        K::CurrencyConvert => {
            out.push(sev("info", "received conversion request"));
            if ok {
                out.push(sev("info", "conversion request successful"));
            } else {
                out.push(sev("error", "conversion request failed"));
            }
        }
        K::CurrencySupported => out.push(sev("info", "Getting supported currencies...")),
        K::CartGet | K::CartAdd | K::CartEmpty => {
            let short = method.rsplit('/').next().unwrap_or(method);
            out.push(raw(&format!(
                "{CS_INFO}Microsoft.AspNetCore.Hosting.Diagnostics[1]"
            )));
            out.push(raw(&format!(
                "      Request starting HTTP/2 POST http://cartservice:7070/{method} application/grpc "
            )));
            out.push(raw(&format!(
                "{CS_INFO}Microsoft.AspNetCore.Routing.EndpointMiddleware[0]"
            )));
            out.push(raw(&format!("      Executing endpoint 'gRPC - /{method}'")));
            let user = ctx.user(rng).to_string();
            let line = match kind {
                K::CartGet => format!("GetCartAsync called with userId={user}"),
                K::CartEmpty => format!("EmptyCartAsync called with userId={user}"),
                _ => format!(
                    "AddItemAsync called with userId={user}, productId={}, quantity={}",
                    PRODUCTS[rng.random_range(0..PRODUCTS.len())],
                    rng.random_range(1..=10)
                ),
            };
            out.push(raw(&line));
            if !ok && !own_fault {
                out.push(raw(&format!(
                    "{CS_FAIL}cartservice.cartstore.RedisCartStore[0]"
                )));
                out.push(raw(&format!(
                    "      Can't access cart storage. StackExchange.Redis.RedisConnectionException: \
                     No connection is available to service this operation: {}",
                    short.replace("Item", "").to_ascii_uppercase()
                )));
            }
            out.push(raw(&format!(
                "{CS_INFO}Microsoft.AspNetCore.Routing.EndpointMiddleware[1]"
            )));
            out.push(raw(&format!("      Executed endpoint 'gRPC - /{method}'")));
            out.push(raw(&format!(
                "{CS_INFO}Microsoft.AspNetCore.Hosting.Diagnostics[2]"
            )));
            out.push(raw(&format!(
                "      Request finished in {:.4}ms 200 application/grpc",
                dur_ms
            )));
        }
        K::ShippingQuote | K::ShippingShip => {
            let tag = if kind == K::ShippingQuote {
                "GetQuote"
            } else {
                "ShipOrder"
            };
            out.push(sev("info", &format!("[{tag}] received request")));
            if ok {
                out.push(sev("info", &format!("[{tag}] completed request")));
            }
        }
        K::CheckoutPlace => {
            let user = ctx.user(rng).to_string();
            out.push(sev(
                "info",
                &format!(
                    "[PlaceOrder] user_id=\"{user}\" user_currency=\"{}\"",
                    ctx.currency
                ),
            ));
            if ok {
                out.push(sev(
                    "info",
                    &format!("payment went through (transaction_id: {})", uuid(rng)),
                ));
                out.push(sev(
                    "info",
                    "order confirmation email sent to \"someone@example.com\"",
                ));
            } else if !own_fault {
                out.push(sev(
                    "warning",
                    "failed to charge card: could not place order",
                ));
            }
        }
        K::PaymentCharge => {
            let units = rng.random_range(10..3000);
            let nanos = rng.random_range(0..1_000_000_000u32);
            let card = format!(
                "{:04}-{:04}-{:04}-{:04}",
                rng.random_range(4000..5000),
                rng.random_range(0..10000),
                rng.random_range(0..10000),
                rng.random_range(0..10000)
            );
            out.push(sev(
                "info",
                &format!(
                    "PaymentService#Charge invoked with request {{\"amount\":{{\"currency_code\":\"{}\",\"units\":\"{units}\",\"nanos\":{nanos}}},\"credit_card\":{{\"credit_card_number\":\"{card}\",\"credit_card_cvv\":{},\"credit_card_expiration_year\":{},\"credit_card_expiration_month\":{}}}}}",
                    ctx.currency,
                    rng.random_range(100..1000),
                    rng.random_range(2023..2040),
                    rng.random_range(1..=12)
                ),
            ));
            out.push(sev(
                "info",
                &format!(
                    "Transaction processed: visa ending {}     Amount: {}{units}.{:02}",
                    &card[15..],
                    ctx.currency,
                    nanos / 10_000_000
                ),
            ));
        }
        K::EmailSend => out.push(sev(
            "INFO",
            "A request to send order confirmation email to someone@example.com has been received.",
        )),
        K::RecommendationList => {
            let mut ids: Vec<&str> = PRODUCTS.to_vec();
            for i in 0..5 {
                let j = rng.random_range(i..ids.len());
                ids.swap(i, j);
            }
            let list = ids[..5]
                .iter()
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(sev(
                "INFO",
                &format!("[Recv ListRecommendations] product_ids=[{list}]"),
            ));
        }
        K::Generic => {
            let short = method.rsplit(['/', ' ']).next().unwrap_or(method);
            if ok {
                out.push(sev(
                    "info",
                    &format!("[{short}] request handled in {dur_ms:.1} ms"),
                ));
            } else if !own_fault {
                let reason = match status {
                    Status::Unavailable => "connection refused",
                    Status::Deadline => "deadline exceeded",
                    _ => "upstream call failed",
                };
                out.push(sev("error", &format!("[{short}] request failed: {reason}")));
            }
        }
    }
}

/// What the frontend writes when a non-critical call (ads) fails.
pub(crate) fn non_critical_failure(kind: LogKind) -> Option<String> {
    match kind {
        LogKind::FrontendHome | LogKind::FrontendProduct => {
            Some(sev("warning", "failed to retrieve ads"))
        }
        LogKind::CheckoutPlace => Some(sev(
            "warning",
            "failed to send order confirmation to \"someone@example.com\": rpc error: code = Unavailable",
        )),
        _ => None,
    }
}

/// The OpenTelemetry exporter's traceback that a Python service prints when it cannot reach the
/// collector (the real sample shows it during a network fault on `recommendationservice`).
pub(crate) fn exporter_traceback(rng: &mut ChaCha8Rng, out: &mut Vec<String>) {
    let lines = [
        "ERROR:opentelemetry.sdk.trace.export:Exception while exporting Span batch.",
        "Traceback (most recent call last):",
        "  File \"/usr/local/lib/python3.7/site-packages/opentelemetry/sdk/trace/export/__init__.py\", line 331, in export",
        "    self.span_exporter.export(self.spans_list[:idx])  # type: ignore",
        "  File \"/recommendationservice/recommendation_server.py\", line 89, in new_export",
        "  File \"/usr/local/lib/python3.7/site-packages/opentelemetry/exporter/jaeger/__init__.py\", line 420, in submit",
        "    self.collector.submit(batch)",
        "  File \"/usr/local/lib/python3.7/site-packages/thrift/transport/THttpClient.py\", line 160, in flush",
        "    self.__http.endheaders()",
        "    self.http_transport.flush()",
        "  File \"/usr/local/lib/python3.7/http/client.py\", line 1276, in endheaders",
        "    self._send_output(message_body, encode_chunked=encode_chunked)",
        "  File \"/usr/local/lib/python3.7/http/client.py\", line 1036, in _send_output",
        "    self.send(msg)",
        "  File \"/usr/local/lib/python3.7/http/client.py\", line 976, in send",
        "    self.connect()",
        "  File \"/usr/local/lib/python3.7/http/client.py\", line 948, in connect",
        "    (self.host,self.port), self.timeout, self.source_address)",
        "  File \"/usr/local/lib/python3.7/socket.py\", line 707, in create_connection",
        "    for res in getaddrinfo(host, port, 0, SOCK_STREAM):",
        "  File \"/usr/local/lib/python3.7/socket.py\", line 752, in getaddrinfo",
        "    for res in _socket.getaddrinfo(host, port, family, type, proto, flags):",
    ];
    for l in lines {
        out.push(raw(l));
    }
    out.push(raw(if rng.random::<f64>() < 0.67 {
        "socket.gaierror: [Errno -2] Name or service not known"
    } else {
        "socket.gaierror: [Errno -3] Temporary failure in name resolution"
    }));
}

/// The handler's name in a method: `hipstershop.Frontend/Recv.` -> `Recv`,
/// `GET /api/v1/stationservice/stations/idlist` -> `idlist`, `preserve.html` -> `preserve`.
fn handler_name(method: &str) -> &str {
    let m = method.trim_end_matches(['.', '/', ' ']);
    let last = m.rsplit(['/', ' ']).next().unwrap_or(m);
    let last = match last.split_once('.') {
        // `hipstershop.adservice` style: the part after the package.
        Some((a, b))
            if a.chars().all(|c| c.is_ascii_lowercase()) && !b.is_empty() && b != "html" =>
        {
            b
        }
        Some((a, _)) if !a.is_empty() => a,
        _ => last,
    };
    if last.is_empty() { method } else { last }
}

/// The package of a service's code: `ts-station-service` -> `station`, `cart-api` -> `cartapi`.
fn package_of(svc: &str) -> String {
    let s = svc.strip_prefix("ts-").unwrap_or(svc);
    let s = s.strip_suffix("-service").unwrap_or(s);
    s.replace(['-', '_'], "")
}

/// The class name of a service's handler code (`shippingservice` -> `ShippingService`,
/// `ts-station-service` -> `StationService`).
fn class_of(svc: &str) -> String {
    let svc = svc.strip_prefix("ts-").unwrap_or(svc);
    let mut out = String::new();
    for part in svc.split(['-', '_']) {
        let part = part.strip_suffix("service").map_or(part, |p| p);
        let mut c = part.chars();
        if let Some(f) = c.next() {
            out.push(f.to_ascii_uppercase());
            out.push_str(c.as_str());
        }
    }
    out.push_str("Service");
    out
}

/// The lines a service's runtime writes when a handler throws (a code exception): an error
/// line naming the exception and a stack trace through the handler, in the service's language.
/// Console lines lose their first character as every raw line of the data set does.
pub(crate) fn exception_lines(
    lang: Lang,
    svc: &str,
    method: &str,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<String>,
) {
    let short = handler_name(method);
    let class = class_of(svc);
    let lower = short.to_ascii_lowercase();
    let mut camel = short.to_string();
    if let Some(f) = camel.get(0..1) {
        let f = f.to_ascii_lowercase();
        camel.replace_range(0..1, &f);
    }
    let line = |rng: &mut ChaCha8Rng| rng.random_range(40..400);
    match lang {
        Lang::Go => {
            let err = [
                "runtime error: invalid memory address or nil pointer dereference",
                "runtime error: index out of range [3] with length 3",
                "runtime error: slice bounds out of range [:12] with capacity 8",
            ][rng.random_range(0..3)];
            out.push(sev("error", &format!("panic recovered in {method}: {err}")));
            out.push(raw(&format!(
                "goroutine {} [running]:",
                rng.random_range(20..9000)
            )));
            out.push(raw(&format!(
                "main.(*{camel}Handler).{short}(0xc000{:06x}, {{0x1f3c8a0, 0xc000{:06x}}})",
                rng.random_range(0..0xff_ffff),
                rng.random_range(0..0xff_ffff)
            )));
            out.push(raw(&format!(
                "\t/src/{svc}/{lower}.go:{} +0x{:x}",
                line(rng),
                rng.random_range(0x20..0x400)
            )));
            out.push(raw(&format!("main.(*server).{short}(...)")));
            out.push(raw(&format!(
                "google.golang.org/grpc.(*Server).processUnaryRPC(0xc0001b6000, {{0x1f5e3a8, 0xc000{:06x}}})",
                rng.random_range(0..0xff_ffff)
            )));
            out.push(raw(
                "\t/go/pkg/mod/google.golang.org/grpc@v1.31.0/server.go:1180 +0xcfb",
            ));
        }
        Lang::Java | Lang::JavaHttp => {
            let exc = [
                "java.lang.NullPointerException: null",
                "java.lang.IllegalStateException: unexpected state of the request",
                "java.lang.IndexOutOfBoundsException: Index 0 out of bounds for length 0",
                "java.lang.NumberFormatException: For input string: \"null\"",
            ][rng.random_range(0..4)];
            if lang == Lang::JavaHttp {
                out.push(raw(&format!(
                    "ERROR 1 --- [nio-8080-exec-{}] o.a.c.c.C.[.[.[/].[dispatcherServlet]    : Servlet.service() for servlet [dispatcherServlet] in context with path [] threw exception [Request processing failed; nested exception is {exc}] with root cause",
                    rng.random_range(1..10)
                )));
            } else {
                out.push(sev(
                    "error",
                    &format!("Exception while executing {method}: {exc}"),
                ));
            }
            out.push(raw(exc));
            let pkg = if lang == Lang::JavaHttp {
                format!("{}.service", package_of(svc))
            } else {
                "hipstershop".to_string()
            };
            out.push(raw(&format!(
                "\tat {pkg}.{class}Impl.{camel}({class}Impl.java:{})",
                line(rng)
            )));
            out.push(raw(&format!(
                "\tat {pkg}.{class}Impl.handle{short}({class}Impl.java:{})",
                line(rng)
            )));
            if lang == Lang::JavaHttp {
                out.push(raw("\tat org.springframework.web.servlet.FrameworkServlet.processRequest(FrameworkServlet.java:1006)"));
                out.push(raw(
                    "\tat javax.servlet.http.HttpServlet.service(HttpServlet.java:750)",
                ));
            } else {
                out.push(raw("\tat io.grpc.stub.ServerCalls$UnaryServerCallHandler$UnaryServerCallListener.onHalfClose(ServerCalls.java:182)"));
                out.push(raw("\tat io.grpc.internal.ServerImpl$JumpToApplicationThreadServerStreamListener$1HalfClosed.runInContext(ServerImpl.java:331)"));
            }
        }
        Lang::Python => {
            let (exc, code) = [
                (
                    "KeyError: 'product_id'",
                    "product = catalog[request.product_id]",
                ),
                (
                    "AttributeError: 'NoneType' object has no attribute 'items'",
                    "for item in response.items:",
                ),
                (
                    "ValueError: invalid literal for int() with base 10: ''",
                    "count = int(request.count)",
                ),
            ][rng.random_range(0..3)];
            out.push(raw(&format!(
                "ERROR:grpc._server:Exception calling application: {}",
                exc.split_once(": ").map_or(exc, |e| e.1)
            )));
            out.push(raw("Traceback (most recent call last):"));
            out.push(raw("  File \"/usr/local/lib/python3.7/site-packages/grpc/_server.py\", line 435, in _call_behavior"));
            out.push(raw(
                "    response_or_iterator = behavior(argument, context)",
            ));
            out.push(raw(&format!(
                "  File \"/{svc}/{}_server.py\", line {}, in {short}",
                lower,
                line(rng)
            )));
            out.push(raw(&format!("    {code}")));
            out.push(raw(exc));
        }
        Lang::Node => {
            let exc = [
                "TypeError: Cannot read properties of undefined (reading 'units')",
                "RangeError: Invalid array length",
                "TypeError: data.find is not a function",
            ][rng.random_range(0..3)];
            out.push(sev(
                "error",
                &format!("{short} request failed with an unhandled exception: {exc}"),
            ));
            out.push(raw(exc));
            out.push(raw(&format!(
                "    at {camel} (/usr/src/app/server.js:{}:{})",
                line(rng),
                rng.random_range(5..40)
            )));
            out.push(raw(&format!(
                "    at Object.{camel} [as handler] (/usr/src/app/server.js:{}:{})",
                line(rng),
                rng.random_range(5..40)
            )));
            out.push(raw(
                "    at /usr/src/app/node_modules/@grpc/grpc-js/build/src/server.js:821:17",
            ));
        }
        Lang::CSharp => {
            let exc = [
                "System.NullReferenceException: Object reference not set to an instance of an object.",
                "System.InvalidOperationException: Sequence contains no elements",
                "System.ArgumentOutOfRangeException: Index was out of range. Must be non-negative and less than the size of the collection. (Parameter 'index')",
            ][rng.random_range(0..3)];
            out.push(raw(&format!(
                "{CS_FAIL}Grpc.AspNetCore.Server.ServerCallHandler[6]"
            )));
            out.push(raw(&format!(
                "      Error when executing service method '{short}'."
            )));
            out.push(raw(exc));
            out.push(raw(&format!(
                "   at {}.services.{class}.{short}(Request request, ServerCallContext context) in /app/services/{class}.cs:line {}",
                package_of(svc),
                line(rng)
            )));
            out.push(raw("   at Grpc.Shared.Server.UnaryServerMethodInvoker`3.ResolvedInterceptorInvoker(TRequest resolvedRequest, ServerCallContext resolvedContext)"));
        }
        Lang::Store => out.push(format!(
            "Error in {method}: unexpected exception in command handler"
        )),
    }
}

/// The one line a handler logs when it answers with an error response.
pub(crate) fn error_response_line(lang: Lang, method: &str, rng: &mut ChaCha8Rng) -> String {
    let short = handler_name(method);
    let why = [
        "failed to build the response: inconsistent data",
        "unexpected empty result from the data layer",
        "invalid value in the request context",
        "response validation failed",
    ][rng.random_range(0..4)];
    match lang {
        Lang::JavaHttp => sev(
            "error",
            &format!("[{short}] returning 500 INTERNAL_SERVER_ERROR: {why}"),
        ),
        _ => sev(
            "error",
            &format!("[{short}] returning error response: code = Internal desc = {why}"),
        ),
    }
}

/// Start-up lines after a restart.
pub(crate) fn startup_lines(lang: Lang, svc: &str, out: &mut Vec<String>) {
    match lang {
        Lang::Go => {
            out.push(sev("info", &format!("starting {svc}")));
            out.push(sev("info", "starting to listen on tcp: \"[::]:8080\""));
        }
        Lang::CSharp => {
            out.push(raw("Started as process with id 1"));
            out.push(raw(&format!("{CS_INFO}Microsoft.Hosting.Lifetime[0]")));
            out.push(raw("      Now listening on: http://0.0.0.0:7070"));
            out.push(raw(&format!("{CS_INFO}Microsoft.Hosting.Lifetime[0]")));
            out.push(raw("      Application started. Press Ctrl+C to shut down."));
        }
        Lang::Node => out.push(sev("info", "Starting gRPC server on port 7000...")),
        Lang::Python => out.push(sev("INFO", "listening on port: 8080")),
        Lang::Java => out.push(sev("info", "Ad Service started, listening on 9555")),
        Lang::JavaHttp => out.push(sev(
            "info",
            &format!(
                "Started {} in 21.6 seconds (JVM running for 24.1)",
                svc.replace('-', "")
            ),
        )),
        Lang::Store => out.push("Ready to accept connections".to_string()),
    }
}

/// Redis persistence: every 300 s with at least 100 writes.
pub(crate) fn redis_save(pid: u32, out: &mut Vec<String>) {
    out.push("100 changes in 300 seconds. Saving...".to_string());
    out.push(format!("Background saving started by pid {pid}"));
    out.push("DB saved on disk".to_string());
    out.push("RDB: 0 MB of memory used by copy-on-write".to_string());
    out.push("Background saving terminated with success".to_string());
}

/// `2022-03-20T08:01:02.345Z` from ms since the epoch (UTC).
fn iso_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

/// An Envoy access-log line of the caller's sidecar, as Istio writes it, for a failed or slow
/// outbound call (the mesh's access log keeps only those: `response_code >= 400 ||
/// duration >= 1000`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_line(
    start_ms: i64,
    method: &str,
    status: Status,
    dur_ms: i64,
    callee: &str,
    port: u16,
    rng: &mut ChaCha8Rng,
) -> String {
    let (code, flags) = match status {
        Status::Ok => (200, "-"),
        Status::Unavailable => (503, "UF,URX"),
        Status::Deadline => (504, "UT"),
        Status::Unknown | Status::Internal => (500, "-"),
    };
    let path = if method.contains(' ') {
        method.to_string()
    } else {
        format!("POST /{method} HTTP/2")
    };
    let ip = |rng: &mut ChaCha8Rng| {
        format!(
            "172.20.{}.{}",
            rng.random_range(0..8),
            rng.random_range(2..250)
        )
    };
    let upstream = ip(rng);
    let local = ip(rng);
    format!(
        "[{}] \"{path}\" {code} {flags} via_upstream - \"-\" {} {} {dur_ms} {} \"-\" \"grpc-go/1.31.0\" \"{}\" \"{callee}:{port}\" \"{upstream}:{port}\" outbound|{port}||{callee}.default.svc.cluster.local {local}:{} 10.68.{}.{}:{port} {local}:{} - default",
        iso_ms(start_ms),
        rng.random_range(5..400),
        if code == 200 {
            rng.random_range(5..2000)
        } else {
            0
        },
        if code == 200 {
            dur_ms.saturating_sub(1)
        } else {
            0
        },
        uuid(rng),
        rng.random_range(32768..60999),
        rng.random_range(0..255),
        rng.random_range(2..255),
        rng.random_range(32768..60999),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(1_647_747_340_693), "2022-03-20T03:35:40.693Z");
        assert_eq!(iso_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn handler_names_of_every_preset() {
        assert_eq!(handler_name("hipstershop.Frontend/Recv."), "Recv");
        assert_eq!(handler_name("hipstershop.CartService/GetCart"), "GetCart");
        assert_eq!(handler_name("hipstershop.adservice/getads"), "getads");
        assert_eq!(
            handler_name("GET /api/v1/stationservice/stations/idlist"),
            "idlist"
        );
        assert_eq!(handler_name("preserve_other.html"), "preserve_other");
        assert_eq!(handler_name("HGET"), "HGET");
        assert_eq!(class_of("ts-station-service"), "StationService");
        assert_eq!(class_of("shippingservice"), "ShippingService");
        assert_eq!(package_of("ts-station-service"), "station");
    }

    #[test]
    fn exception_lines_read_as_errors_with_frames() {
        let mut rng = crate::rand_util::stream(1, crate::rand_util::Stream::Logs);
        for lang in [
            Lang::Go,
            Lang::Java,
            Lang::JavaHttp,
            Lang::Python,
            Lang::Node,
            Lang::CSharp,
        ] {
            let mut out = Vec::new();
            exception_lines(
                lang,
                "cartservice",
                "hipstershop.CartService/GetCart",
                &mut rng,
                &mut out,
            );
            assert!(out.len() >= 4, "{lang:?}: {out:?}");
            let lower: Vec<String> = out.iter().map(|l| l.to_ascii_lowercase()).collect();
            assert!(
                lower
                    .iter()
                    .any(|l| l.contains("exception") || l.contains("error") || l.contains("panic")),
                "{lang:?}: {out:?}"
            );
            assert!(
                out.iter()
                    .any(|l| l.contains("GetCart") || l.contains("getCart")),
                "{lang:?}: {out:?}"
            );
        }
        let l = error_response_line(Lang::Go, "hipstershop.Frontend/Recv.", &mut rng);
        assert!(
            l.starts_with("severity: error, message: [Recv] returning error response"),
            "{l}"
        );
    }

    #[test]
    fn raw_lines_lose_their_first_character_like_the_sample() {
        assert_eq!(raw("GetCartAsync called"), "etCartAsync called");
        assert_eq!(
            raw("Traceback (most recent call last):"),
            "raceback (most recent call last):"
        );
    }
}
