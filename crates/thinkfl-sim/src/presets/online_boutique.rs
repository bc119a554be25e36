//! Online Boutique as in AIOps 2022, following its deployment and the real sample in
//! `shared/fixtures/aiops2022-sample`: the Go services write `rpc` spans named after the gRPC
//! method with status `0`; the C# cart service writes `http` server spans named `/<method>` with
//! status `200` and `db` spans (`HGET`, `HSET`, `EXPIRE`) with status `Ok`; the Node.js services
//! write `telemetry` server spans named `grpc.<method>`; the Python services write spans with an
//! empty type named `/<method>`; the Java ad service writes `rpc` spans named
//! `hipstershop.adservice/getads` with status `OK`.

use crate::model::{Builder, Endpoint, ErrStyle, Lang, LogKind};

fn ob_pods(svc: &str) -> Vec<String> {
    vec![
        format!("{svc}-0"),
        format!("{svc}-1"),
        format!("{svc}-2"),
        format!("{svc}2-0"),
    ]
}

/// Online Boutique as in AIOps 2022.
pub(super) fn build(b: &mut Builder) {
    use LogKind as L;
    let g = |s: &str| Some(format!("{s}-grpc"));
    let frontend = b.svc(
        "frontend",
        Lang::Go,
        ob_pods("frontend"),
        Some("frontend-http".into()),
    );
    let cart = b.svc(
        "cartservice",
        Lang::CSharp,
        ob_pods("cartservice"),
        g("cartservice"),
    );
    let catalog = b.svc(
        "productcatalogservice",
        Lang::Go,
        ob_pods("productcatalogservice"),
        g("productcatalogservice"),
    );
    let currency = b.svc(
        "currencyservice",
        Lang::Node,
        ob_pods("currencyservice"),
        g("currencyservice"),
    );
    let payment = b.svc(
        "paymentservice",
        Lang::Node,
        ob_pods("paymentservice"),
        g("paymentservice"),
    );
    let shipping = b.svc(
        "shippingservice",
        Lang::Go,
        ob_pods("shippingservice"),
        g("shippingservice"),
    );
    let email = b.svc(
        "emailservice",
        Lang::Python,
        ob_pods("emailservice"),
        g("emailservice"),
    );
    let checkout = b.svc(
        "checkoutservice",
        Lang::Go,
        ob_pods("checkoutservice"),
        g("checkoutservice"),
    );
    let recommendation = b.svc(
        "recommendationservice",
        Lang::Python,
        ob_pods("recommendationservice"),
        g("recommendationservice"),
    );
    let ad = b.svc(
        "adservice",
        Lang::Java,
        ob_pods("adservice"),
        g("adservice"),
    );
    let redis = b.svc(
        "redis-cart",
        Lang::Store,
        vec!["redis-cart-0".into(), "redis-cart2-0".into()],
        None,
    );

    let hget = b.op(redis, "HGET", 0.25, 0.5, 0.6, 0.05, L::None);
    let hset = b.op(redis, "HSET", 0.3, 0.5, 0.5, 0.15, L::None);
    let expire = b.op(redis, "EXPIRE", 0.15, 0.5, 0.6, 0.05, L::None);
    let get_cart = b.op(
        cart,
        "hipstershop.CartService/GetCart",
        0.9,
        0.45,
        0.7,
        0.0,
        L::CartGet,
    );
    b.calls(get_cart, &[(hget, 1, 1, 1.0)]);
    let add_item = b.op(
        cart,
        "hipstershop.CartService/AddItem",
        1.4,
        0.45,
        0.7,
        0.0,
        L::CartAdd,
    );
    b.calls(
        add_item,
        &[(hget, 1, 1, 1.0), (hset, 1, 1, 1.0), (expire, 1, 1, 1.0)],
    );
    let empty_cart = b.op(
        cart,
        "hipstershop.CartService/EmptyCart",
        1.1,
        0.45,
        0.7,
        0.0,
        L::CartEmpty,
    );
    b.calls(empty_cart, &[(hset, 1, 1, 1.0), (expire, 1, 1, 1.0)]);

    let get_product = b.op(
        catalog,
        "hipstershop.ProductCatalogService/GetProduct",
        3.6,
        0.3,
        0.8,
        0.0,
        L::None,
    );
    let list_products = b.op(
        catalog,
        "hipstershop.ProductCatalogService/ListProducts",
        0.05,
        0.6,
        0.8,
        0.0,
        L::None,
    );
    let convert = b.op(
        currency,
        "hipstershop.CurrencyService/Convert",
        0.12,
        0.35,
        0.9,
        0.0,
        L::CurrencyConvert,
    );
    let currencies = b.op(
        currency,
        "hipstershop.CurrencyService/GetSupportedCurrencies",
        0.13,
        0.35,
        0.9,
        0.0,
        L::CurrencySupported,
    );
    let charge = b.op(
        payment,
        "hipstershop.PaymentService/Charge",
        0.6,
        0.4,
        0.9,
        0.0,
        L::PaymentCharge,
    );
    let quote = b.op(
        shipping,
        "hipstershop.ShippingService/GetQuote",
        0.08,
        0.5,
        0.8,
        0.0,
        L::ShippingQuote,
    );
    let ship = b.op(
        shipping,
        "hipstershop.ShippingService/ShipOrder",
        0.09,
        0.5,
        0.8,
        0.0,
        L::ShippingShip,
    );
    let send_email = b.op(
        email,
        "hipstershop.EmailService/SendOrderConfirmation",
        6.0,
        0.35,
        0.6,
        0.25,
        L::EmailSend,
    );
    b.ops[send_email as usize].critical = false;
    let list_recs = b.op(
        recommendation,
        "hipstershop.RecommendationService/ListRecommendations",
        1.6,
        0.4,
        0.85,
        0.0,
        L::RecommendationList,
    );
    b.calls(list_recs, &[(list_products, 1, 1, 1.0)]);
    let get_ads = b.op(
        ad,
        "hipstershop.AdService/GetAds",
        0.03,
        0.8,
        0.9,
        0.0,
        L::None,
    );
    // A missing ad is logged and ignored by the frontend.
    b.ops[get_ads as usize].critical = false;
    let place_order = b.op(
        checkout,
        "hipstershop.CheckoutService/PlaceOrder",
        2.0,
        0.4,
        0.7,
        0.0,
        L::CheckoutPlace,
    );
    b.calls(
        place_order,
        &[
            (get_cart, 1, 1, 1.0),
            (get_product, 1, 3, 1.0),
            (convert, 1, 3, 1.0),
            (quote, 1, 1, 1.0),
            (convert, 1, 1, 1.0),
            (charge, 1, 1, 1.0),
            (ship, 1, 1, 1.0),
            (empty_cart, 1, 1, 1.0),
            (send_email, 1, 1, 1.0),
        ],
    );

    // The frontend handlers of the 2022 deployment; every root span is
    // `hipstershop.Frontend/Recv.` of type http.
    let root = b.label(
        "hipstershop.Frontend/Recv.".into(),
        "http",
        "0",
        ErrStyle::Http,
    );
    let page = |b: &mut Builder, log: LogKind, self_ms: f64| {
        let op = b.op(
            frontend,
            "hipstershop.Frontend/Recv.",
            self_ms,
            0.35,
            0.7,
            0.0,
            log,
        );
        b.ops[op as usize].server_label = root;
        b.ops[op as usize].resp_kb = 12.0;
        op
    };
    let home = page(b, L::FrontendHome, 2.5);
    b.calls(
        home,
        &[
            (currencies, 1, 1, 1.0),
            (list_products, 1, 1, 1.0),
            (get_cart, 1, 1, 1.0),
            (convert, 9, 9, 1.0),
            (get_ads, 1, 1, 1.0),
        ],
    );
    let product = page(b, L::FrontendProduct, 1.5);
    b.calls(
        product,
        &[
            (get_product, 1, 1, 1.0),
            (currencies, 1, 1, 1.0),
            (get_cart, 1, 1, 1.0),
            (convert, 1, 1, 1.0),
            (list_recs, 1, 1, 1.0),
            (get_product, 4, 5, 1.0),
            (get_ads, 1, 1, 1.0),
        ],
    );
    let view_cart = page(b, L::FrontendViewCart, 1.8);
    b.calls(
        view_cart,
        &[
            (currencies, 1, 1, 1.0),
            (get_cart, 1, 1, 1.0),
            (list_recs, 1, 1, 1.0),
            (get_product, 4, 4, 1.0),
            (quote, 1, 1, 1.0),
            (convert, 1, 1, 1.0),
            (get_product, 1, 3, 1.0),
            (convert, 1, 3, 1.0),
        ],
    );
    let add_to_cart = page(b, L::FrontendAddToCart, 0.8);
    b.calls(
        add_to_cart,
        &[(get_product, 1, 1, 1.0), (add_item, 1, 1, 1.0)],
    );
    let set_currency = page(b, L::FrontendSetCurrency, 0.3);
    let checkout_page = page(b, L::FrontendCheckout, 1.6);
    b.calls(
        checkout_page,
        &[
            (place_order, 1, 1, 1.0),
            (list_recs, 1, 1, 1.0),
            (get_product, 4, 4, 1.0),
            (currencies, 1, 1, 1.0),
        ],
    );
    // The request mix of the real sample's frontend logs (pages served in four minutes).
    for (op, w) in [
        (product, 392.0),
        (view_cart, 150.0),
        (home, 86.0),
        (add_to_cart, 60.0),
        (set_currency, 58.0),
        (checkout_page, 27.0),
    ] {
        b.endpoints.push(Endpoint { op, weight: w });
    }
}
