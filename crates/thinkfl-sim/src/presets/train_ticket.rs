//! A Train-Ticket-like system (after FudanSELab's train-ticket benchmark).

use crate::model::{Builder, Endpoint, Lang, LogKind};

/// A Train-Ticket-like system: about 40 Spring Boot services behind `ts-ui-dashboard`, each with
/// HTTP operations, several with their own MongoDB.
pub(super) fn build(b: &mut Builder) {
    use LogKind::Generic as G;
    let names = [
        "ts-ui-dashboard",
        "ts-auth-service",
        "ts-user-service",
        "ts-verification-code-service",
        "ts-station-service",
        "ts-train-service",
        "ts-config-service",
        "ts-route-service",
        "ts-price-service",
        "ts-basic-service",
        "ts-ticketinfo-service",
        "ts-order-service",
        "ts-order-other-service",
        "ts-travel-service",
        "ts-travel2-service",
        "ts-seat-service",
        "ts-travel-plan-service",
        "ts-route-plan-service",
        "ts-preserve-service",
        "ts-preserve-other-service",
        "ts-contacts-service",
        "ts-assurance-service",
        "ts-food-service",
        "ts-food-map-service",
        "ts-consign-service",
        "ts-consign-price-service",
        "ts-security-service",
        "ts-inside-payment-service",
        "ts-payment-service",
        "ts-cancel-service",
        "ts-rebook-service",
        "ts-execute-service",
        "ts-notification-service",
        "ts-admin-basic-info-service",
        "ts-admin-order-service",
        "ts-admin-route-service",
        "ts-admin-travel-service",
        "ts-admin-user-service",
        "ts-news-service",
        "ts-voucher-service",
    ];
    let mut id = std::collections::BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        let replicas = if i < 20 { 2 } else { 1 };
        let pods = (0..replicas).map(|k| format!("{n}-{k}")).collect();
        let s = b.svc(n, Lang::JavaHttp, pods, Some(format!("{n}-http")));
        id.insert(*n, s);
    }
    let mongo_of = |b: &mut Builder, svc: &str| {
        let name = svc.replace("-service", "-mongo");
        let s = b.svc(&name, Lang::Store, vec![format!("{name}-0")], None);
        (
            b.op(s, "mongodb.find", 0.6, 0.5, 0.4, 0.3, LogKind::None),
            b.op(s, "mongodb.update", 0.9, 0.5, 0.3, 0.5, LogKind::None),
        )
    };
    let path = |svc: &str| {
        svc.trim_start_matches("ts-")
            .trim_end_matches("-service")
            .replace('-', "")
    };
    let op = |b: &mut Builder, svc: &str, verb: &str, rest: &str, ms: f64| {
        let m = format!("{verb} /api/v1/{}service/{rest}", path(svc));
        b.op(id[svc], &m, ms, 0.4, 0.6, 0.05, G)
    };
    let (order_find, order_upd) = mongo_of(b, "ts-order-service");
    let (oo_find, oo_upd) = mongo_of(b, "ts-order-other-service");
    let (user_find, _) = mongo_of(b, "ts-user-service");
    let (auth_find, _) = mongo_of(b, "ts-auth-service");
    let (station_find, _) = mongo_of(b, "ts-station-service");
    let (train_find, _) = mongo_of(b, "ts-train-service");
    let (route_find, _) = mongo_of(b, "ts-route-service");
    let (price_find, _) = mongo_of(b, "ts-price-service");
    let (contacts_find, _) = mongo_of(b, "ts-contacts-service");
    let (travel_find, _) = mongo_of(b, "ts-travel-service");
    let (config_find, _) = mongo_of(b, "ts-config-service");
    let (pay_find, pay_upd) = mongo_of(b, "ts-inside-payment-service");
    let (food_find, _) = mongo_of(b, "ts-food-map-service");
    let (consign_find, consign_upd) = mongo_of(b, "ts-consign-service");
    let (assur_find, assur_upd) = mongo_of(b, "ts-assurance-service");

    let verify = op(
        b,
        "ts-verification-code-service",
        "GET",
        "verification/verify",
        1.2,
    );
    let auth_login = op(b, "ts-auth-service", "POST", "users/login", 6.0);
    b.calls(auth_login, &[(verify, 1, 1, 1.0), (auth_find, 1, 1, 1.0)]);
    let user_get = op(b, "ts-user-service", "GET", "users/id", 1.5);
    b.calls(user_get, &[(user_find, 1, 1, 1.0)]);
    let station_id = op(b, "ts-station-service", "POST", "stations/idlist", 1.0);
    b.calls(station_id, &[(station_find, 1, 2, 1.0)]);
    let train_get = op(b, "ts-train-service", "GET", "trains/byName", 0.8);
    b.calls(train_get, &[(train_find, 1, 1, 1.0)]);
    let route_get = op(b, "ts-route-service", "GET", "routes/routeId", 1.0);
    b.calls(route_get, &[(route_find, 1, 1, 1.0)]);
    let price_get = op(
        b,
        "ts-price-service",
        "POST",
        "prices/byRouteIdsAndTrainTypes",
        1.1,
    );
    b.calls(price_get, &[(price_find, 1, 1, 1.0)]);
    let config_get = op(
        b,
        "ts-config-service",
        "GET",
        "configs/DirectTicketAllocationProportion",
        0.6,
    );
    b.calls(config_get, &[(config_find, 1, 1, 1.0)]);
    let basic = op(b, "ts-basic-service", "POST", "basic/travels", 2.0);
    b.calls(
        basic,
        &[
            (station_id, 1, 1, 1.0),
            (train_get, 1, 1, 1.0),
            (route_get, 1, 1, 1.0),
            (price_get, 1, 1, 1.0),
        ],
    );
    let ticketinfo = op(
        b,
        "ts-ticketinfo-service",
        "POST",
        "ticketinfo/travels",
        0.8,
    );
    b.calls(ticketinfo, &[(basic, 1, 1, 1.0)]);
    let order_sold = op(b, "ts-order-service", "POST", "orders/tickets", 1.8);
    b.calls(order_sold, &[(order_find, 1, 1, 1.0)]);
    let oo_sold = op(
        b,
        "ts-order-other-service",
        "POST",
        "orderOther/tickets",
        1.8,
    );
    b.calls(oo_sold, &[(oo_find, 1, 1, 1.0)]);
    let seat_left = op(b, "ts-seat-service", "POST", "seats/left_tickets", 1.5);
    b.calls(
        seat_left,
        &[(config_get, 1, 1, 1.0), (order_sold, 1, 1, 1.0)],
    );
    let seat_left2 = op(
        b,
        "ts-seat-service",
        "POST",
        "seats/left_tickets_other",
        1.5,
    );
    b.calls(seat_left2, &[(config_get, 1, 1, 1.0), (oo_sold, 1, 1, 1.0)]);
    let trips_left = op(b, "ts-travel-service", "POST", "trips/left", 3.0);
    b.calls(
        trips_left,
        &[
            (travel_find, 1, 1, 1.0),
            (ticketinfo, 1, 3, 1.0),
            (seat_left, 1, 3, 1.0),
        ],
    );
    let trips_left2 = op(b, "ts-travel2-service", "POST", "trips/left", 3.0);
    b.calls(
        trips_left2,
        &[(ticketinfo, 1, 2, 1.0), (seat_left2, 1, 2, 1.0)],
    );
    let route_plan = op(
        b,
        "ts-route-plan-service",
        "POST",
        "routePlan/cheapestRoute",
        2.5,
    );
    b.calls(
        route_plan,
        &[(trips_left, 1, 1, 1.0), (trips_left2, 1, 1, 1.0)],
    );
    let travel_plan = op(
        b,
        "ts-travel-plan-service",
        "POST",
        "travelPlan/cheapest",
        2.0,
    );
    b.calls(
        travel_plan,
        &[(route_plan, 1, 1, 1.0), (station_id, 1, 1, 1.0)],
    );
    let contacts = op(b, "ts-contacts-service", "GET", "contacts/account", 1.0);
    b.calls(contacts, &[(contacts_find, 1, 1, 1.0)]);
    let security = op(
        b,
        "ts-security-service",
        "GET",
        "securityConfigs/check",
        1.2,
    );
    b.calls(security, &[(order_sold, 1, 1, 1.0), (oo_sold, 1, 1, 1.0)]);
    let assurance = op(b, "ts-assurance-service", "POST", "assurances/create", 1.0);
    b.calls(
        assurance,
        &[(assur_find, 1, 1, 1.0), (assur_upd, 1, 1, 1.0)],
    );
    let food_map = op(b, "ts-food-map-service", "GET", "foodstores", 1.0);
    b.calls(food_map, &[(food_find, 1, 1, 1.0)]);
    let food = op(b, "ts-food-service", "POST", "orders/create", 1.4);
    b.calls(food, &[(food_map, 1, 1, 0.6)]);
    let consign_price = op(
        b,
        "ts-consign-price-service",
        "GET",
        "consignprice/weight",
        0.6,
    );
    let consign = op(b, "ts-consign-service", "POST", "consigns", 1.4);
    b.calls(
        consign,
        &[
            (consign_price, 1, 1, 1.0),
            (consign_find, 1, 1, 1.0),
            (consign_upd, 1, 1, 1.0),
        ],
    );
    let order_create = op(b, "ts-order-service", "POST", "orders", 2.2);
    b.calls(order_create, &[(order_upd, 1, 1, 1.0)]);
    let notify = op(
        b,
        "ts-notification-service",
        "POST",
        "notification/preserve_success",
        3.0,
    );
    b.ops[notify as usize].critical = false;
    let preserve = op(b, "ts-preserve-service", "POST", "preserve", 4.0);
    b.calls(
        preserve,
        &[
            (security, 1, 1, 1.0),
            (contacts, 1, 1, 1.0),
            (trips_left, 1, 1, 1.0),
            (seat_left, 1, 1, 1.0),
            (order_create, 1, 1, 1.0),
            (assurance, 1, 1, 0.5),
            (food, 1, 1, 0.5),
            (consign, 1, 1, 0.3),
            (user_get, 1, 1, 1.0),
            (notify, 1, 1, 1.0),
        ],
    );
    let oo_create = op(b, "ts-order-other-service", "POST", "orderOther", 2.2);
    b.calls(oo_create, &[(oo_upd, 1, 1, 1.0)]);
    let preserve_other = op(b, "ts-preserve-other-service", "POST", "preserveOther", 4.0);
    b.calls(
        preserve_other,
        &[
            (security, 1, 1, 1.0),
            (contacts, 1, 1, 1.0),
            (trips_left2, 1, 1, 1.0),
            (oo_create, 1, 1, 1.0),
            (user_get, 1, 1, 1.0),
            (notify, 1, 1, 1.0),
        ],
    );
    let payment = op(b, "ts-payment-service", "POST", "payment", 2.0);
    let order_get = op(b, "ts-order-service", "POST", "orders/refresh", 1.5);
    b.calls(order_get, &[(order_find, 1, 1, 1.0)]);
    let order_modify = op(b, "ts-order-service", "GET", "orders/status", 1.5);
    b.calls(order_modify, &[(order_upd, 1, 1, 1.0)]);
    let pay = op(
        b,
        "ts-inside-payment-service",
        "POST",
        "inside_payment",
        2.5,
    );
    b.calls(
        pay,
        &[
            (order_get, 1, 1, 1.0),
            (pay_find, 1, 1, 1.0),
            (payment, 1, 1, 0.4),
            (pay_upd, 1, 1, 1.0),
            (order_modify, 1, 1, 1.0),
        ],
    );
    let drawback = op(
        b,
        "ts-inside-payment-service",
        "GET",
        "inside_payment/drawback",
        1.6,
    );
    b.calls(drawback, &[(pay_upd, 1, 1, 1.0)]);
    let cancel = op(b, "ts-cancel-service", "GET", "cancel", 2.5);
    b.calls(
        cancel,
        &[
            (order_get, 1, 1, 1.0),
            (order_modify, 1, 1, 1.0),
            (drawback, 1, 1, 1.0),
            (user_get, 1, 1, 1.0),
            (notify, 1, 1, 1.0),
        ],
    );
    let rebook = op(b, "ts-rebook-service", "POST", "rebook", 3.0);
    b.calls(
        rebook,
        &[
            (order_get, 1, 1, 1.0),
            (trips_left, 1, 1, 1.0),
            (seat_left, 1, 1, 1.0),
            (pay, 1, 1, 0.5),
            (order_modify, 1, 1, 1.0),
        ],
    );
    let execute = op(b, "ts-execute-service", "GET", "execute/collected", 1.5);
    b.calls(
        execute,
        &[(order_get, 1, 1, 1.0), (order_modify, 1, 1, 1.0)],
    );
    let news = op(b, "ts-news-service", "GET", "news", 0.5);
    let voucher = op(b, "ts-voucher-service", "POST", "getVoucher", 1.5);
    b.calls(voucher, &[(order_get, 1, 1, 1.0)]);
    let admin_basic = op(
        b,
        "ts-admin-basic-info-service",
        "GET",
        "adminbasic/stations",
        1.2,
    );
    b.calls(admin_basic, &[(station_id, 1, 1, 1.0)]);
    let admin_order = op(b, "ts-admin-order-service", "GET", "adminorder", 2.0);
    b.calls(admin_order, &[(order_get, 1, 1, 1.0), (oo_sold, 1, 1, 1.0)]);
    let admin_route = op(b, "ts-admin-route-service", "GET", "adminroute", 1.2);
    b.calls(admin_route, &[(route_get, 1, 1, 1.0)]);
    let admin_travel = op(b, "ts-admin-travel-service", "GET", "admintravel", 1.8);
    b.calls(
        admin_travel,
        &[(trips_left, 1, 1, 1.0), (trips_left2, 1, 1, 1.0)],
    );
    let admin_user = op(b, "ts-admin-user-service", "GET", "adminuser", 1.2);
    b.calls(admin_user, &[(user_get, 1, 1, 1.0)]);

    // Entry pages on the dashboard (nginx + UI): each root calls one backend flow.
    let ui = id["ts-ui-dashboard"];
    let entry = |b: &mut Builder, path: &str, callee: u32, w: f64| {
        let o = b.op(
            ui,
            &format!("GET /{path}"),
            0.6,
            0.3,
            0.5,
            0.0,
            LogKind::None,
        );
        b.calls(o, &[(callee, 1, 1, 1.0)]);
        b.endpoints.push(Endpoint { op: o, weight: w });
    };
    entry(b, "client_login.html", auth_login, 8.0);
    entry(b, "index.html", trips_left, 30.0);
    entry(b, "search_other.html", trips_left2, 10.0);
    entry(b, "travel_plan.html", travel_plan, 6.0);
    entry(b, "preserve.html", preserve, 8.0);
    entry(b, "preserve_other.html", preserve_other, 3.0);
    entry(b, "payment.html", pay, 6.0);
    entry(b, "cancel.html", cancel, 2.0);
    entry(b, "rebook.html", rebook, 1.5);
    entry(b, "execute.html", execute, 2.0);
    entry(b, "news.html", news, 3.0);
    entry(b, "voucher.html", voucher, 1.0);
    entry(b, "admin_basic.html", admin_basic, 0.7);
    entry(b, "admin_order.html", admin_order, 0.7);
    entry(b, "admin_route.html", admin_route, 0.5);
    entry(b, "admin_travel.html", admin_travel, 0.5);
    entry(b, "admin_user.html", admin_user, 0.5);
}
