use super::*;

fn rules(json: &str) -> Rules {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let source: RouteRules = serde_json::from_value(v).unwrap();
    Rules::compile(&source).unwrap()
}

struct Req {
    method: Method,
    host: &'static str,
    pq: &'static str,
    headers: HeaderMap,
    client: IpAddr,
    length: Option<u64>,
}

impl Req {
    fn get(pq: &'static str) -> Self {
        Req {
            method: Method::GET,
            host: "www.a.com",
            pq,
            headers: HeaderMap::new(),
            client: "127.0.0.1".parse().unwrap(),
            length: None,
        }
    }

    fn ask(&self) -> Ask<'_> {
        Ask {
            method: &self.method,
            host: Some(self.host),
            path_and_query: self.pq,
            headers: &self.headers,
            client: Some(self.client),
            tls: true,
            content_length: self.length,
        }
    }
}

async fn status(r: &Rules, req: &Req) -> Option<u16> {
    r.screen(&req.ask()).await.map(|own| own.status)
}

#[test]
fn empty_rules_compile_to_nothing() {
    assert!(Rules::compile(&RouteRules::default()).is_none());
}

#[tokio::test]
async fn the_ip_lists_come_first_and_deny_wins() {
    let r =
        rules(r#"{"ip_allow":["127.0.0.0/8"],"ip_deny":["127.0.0.9"],"redirect_www":"to_apex"}"#);
    let mut req = Req::get("/");
    req.client = "127.0.0.9".parse().unwrap();
    assert_eq!(status(&r, &req).await, Some(403));
    req.client = "10.0.0.1".parse().unwrap();
    assert_eq!(status(&r, &req).await, Some(403));
    req.client = "127.0.0.1".parse().unwrap();
    assert_eq!(
        status(&r, &req).await,
        Some(308),
        "allowed, then redirected"
    );
}

#[tokio::test]
async fn a_rate_limit_answers_429_with_retry_after() {
    let r = rules(r#"{"rate_limit":{"per_second":1,"burst":2}}"#);
    let req = Req::get("/");
    assert_eq!(status(&r, &req).await, None);
    assert_eq!(status(&r, &req).await, None);
    let own = r.screen(&req.ask()).await.unwrap();
    assert_eq!(own.status, 429);
    assert!(own
        .fields
        .iter()
        .any(|(n, v)| n == "retry-after" && v == "1"));
}

#[tokio::test]
async fn redirects_and_preflights() {
    let r = rules(
        r#"{"redirects":[{"from":"^/old/(.*)$","to":"/new/$1","status":301}],
            "cors":{"origins":["https://app.test"],"methods":["GET"],"headers":[],"expose_headers":[],"credentials":false,"max_age_secs":60}}"#,
    );
    let own = r.screen(&Req::get("/old/x?y=1").ask()).await.unwrap();
    assert_eq!(
        (
            own.status,
            own.fields
                .iter()
                .find(|(n, _)| n == "location")
                .map(|(_, v)| v.clone())
        ),
        (301, Some(HeaderValue::from_static("/new/x?y=1")))
    );
    let mut pre = Req::get("/api");
    pre.method = Method::OPTIONS;
    pre.headers
        .insert("origin", HeaderValue::from_static("https://app.test"));
    pre.headers.insert(
        "access-control-request-method",
        HeaderValue::from_static("GET"),
    );
    let own = r.screen(&pre.ask()).await.unwrap();
    assert_eq!(own.status, 204);
    assert!(own.body.is_empty());
}

#[test]
fn outgoing_edits_set_remove_and_default_fields() {
    let r = rules(
        r#"{"headers":{"response":{"set":{"x-env":"stage"},"remove":["server"]}},"security_headers":true,
            "compression":["gzip"]}"#,
    );
    let mut req = Req::get("/");
    req.headers
        .insert("accept-encoding", HeaderValue::from_static("gzip, br"));
    let out = r.outgoing(&req.ask()).unwrap();
    let mut h = HeaderMap::new();
    h.insert("server", HeaderValue::from_static("app"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("content-type", HeaderValue::from_static("text/html"));
    h.insert("content-length", HeaderValue::from_static("5000"));
    h.insert("etag", HeaderValue::from_static("\"v1\""));
    let (coding, varies) = out.compression(200, &h);
    assert_eq!(coding, Some(Coding::Gzip));
    out.apply(&mut h, coding, varies);
    assert!(h.get("server").is_none());
    assert_eq!(h["x-env"], "stage");
    assert_eq!(h["x-frame-options"], "DENY", "the app's own value is kept");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(h["vary"], "Accept-Encoding");
    assert_eq!(h["etag"], "W/\"v1\"");
    assert!(h.get("content-length").is_none());
}

#[test]
fn a_maintenance_message_is_escaped() {
    let page = maintenance_page(Some("<b>back</b> at 5 & 6"));
    let text = std::str::from_utf8(&page).unwrap();
    assert!(text.contains("&lt;b&gt;back&lt;/b&gt; at 5 &amp; 6"));
}

#[test]
fn rules_that_leave_responses_alone_edit_none() {
    let r = rules(r#"{"ip_deny":["10.0.0.0/8"],"rate_limit":{"per_second":5,"burst":5}}"#);
    assert!(r.outgoing(&Req::get("/").ask()).is_none());
}
