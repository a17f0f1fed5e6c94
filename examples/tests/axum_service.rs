//! The axum example's service, started on a free loopback port on a database of its own and
//! driven over real HTTP: create, get, list page by page with the cursor, patch (with and
//! without the version read), delete, and the error answers (400, 404, 409, 422) on the way.
//! Every wait is bounded, so a hang fails the test instead of blocking the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test loudly

#[path = "../axum_service/api.rs"]
mod api;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use toolkit::testing::TestDatabase;
use toolkit::Database;

/// Far above what any step takes on a loaded machine, far below a hung suite.
const STEP: Duration = Duration::from_secs(30);

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {STEP:?}"))
}

/// An HTTP client of the service at one address.
struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

/// What came back: the status, the `Location` header, and the body as JSON (`Null` when empty).
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Value,
}

impl Http {
    fn new(addr: SocketAddr) -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<&str>) -> Answer {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .unwrap();
        let what = format!("{method} {path}");
        bounded(&what, async {
            let response = self.client.request(request).await.unwrap();
            let status = response.status();
            let location = response
                .headers()
                .get(header::LOCATION)
                .map(|value| value.to_str().unwrap().to_owned());
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                    panic!(
                        "{what}: not JSON ({err}): {}",
                        String::from_utf8_lossy(&bytes)
                    )
                })
            };
            Answer {
                status,
                location,
                body,
            }
        })
        .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, Some(&body.to_string())).await
    }

    async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::PATCH, path, Some(&body.to_string()))
            .await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }
}

/// Checks the status, and that an error answer says something in the service's JSON shape.
#[track_caller]
fn expect(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "body: {}", answer.body);
    if status.is_client_error() {
        let message = answer.body["error"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "error body: {}", answer.body);
    }
}

/// Every page of `GET /bookmarks?limit={limit}`, following `next`: the ids of each page.
async fn pages(http: &Http, limit: u64) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    let mut path = format!("/bookmarks?limit={limit}");
    // More pages than rows would mean the cursor never ends.
    for _ in 0..50 {
        let answer = http.get(&path).await;
        expect(&answer, StatusCode::OK);
        let ids = answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_i64().unwrap())
            .collect();
        pages.push(ids);
        match answer.body["next"].as_str() {
            Some(next) => path = format!("/bookmarks?limit={limit}&cursor={next}"),
            None => return pages,
        }
    }
    panic!("the listing did not end after 50 pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_service_over_http() {
    let test_db = bounded("creating the test database", TestDatabase::create())
        .await
        .unwrap();
    let db: Database = test_db.database().unwrap();
    db.register_init_callback(api::migrate).await;
    bounded("init_db", db.init_db()).await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, api::router(db.clone()))
            .with_graceful_shutdown(async {
                stopped.await.ok();
            })
            .into_future(),
    );
    let http = Http::new(addr);

    // Create: 201, the stored row with its generated columns, and where to find it.
    let mut ids = Vec::new();
    for n in 1..=7 {
        let answer = http
            .post(
                "/bookmarks",
                &json!({"url": format!("https://example.com/{n}"), "title": format!("page {n}"), "tags": ["n"]}),
            )
            .await;
        expect(&answer, StatusCode::CREATED);
        let id = answer.body["id"].as_i64().unwrap();
        assert_eq!(
            answer.location.as_deref(),
            Some(&*format!("/bookmarks/{id}"))
        );
        assert_eq!(answer.body["version"], 0);
        assert_eq!(answer.body["tags"], json!(["n"]));
        assert!(answer.body["created_at"].is_string());
        ids.push(id);
    }
    let first = format!("/bookmarks/{}", ids[0]);

    // Bad creations: a taken url (unique violation), an empty title (check violation),
    // malformed JSON, a missing field, an unknown field.
    let taken = http
        .post(
            "/bookmarks",
            &json!({"url": "https://example.com/1", "title": "again"}),
        )
        .await;
    expect(&taken, StatusCode::CONFLICT);
    let empty = http
        .post(
            "/bookmarks",
            &json!({"url": "https://example.com/empty", "title": ""}),
        )
        .await;
    expect(&empty, StatusCode::UNPROCESSABLE_ENTITY);
    let malformed = http
        .send(Method::POST, "/bookmarks", Some("{\"url\": "))
        .await;
    expect(&malformed, StatusCode::BAD_REQUEST);
    let missing = http
        .post("/bookmarks", &json!({"url": "https://example.com/x"}))
        .await;
    expect(&missing, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = http
        .post(
            "/bookmarks",
            &json!({"url": "https://example.com/y", "title": "y", "owner": 1}),
        )
        .await;
    expect(&unknown, StatusCode::UNPROCESSABLE_ENTITY);

    // Get: 200 with the row; 404 for a missing id; 400 for an id that is not a number.
    let got = http.get(&first).await;
    expect(&got, StatusCode::OK);
    assert_eq!(got.body["title"], "page 1");
    expect(&http.get("/bookmarks/999999").await, StatusCode::NOT_FOUND);
    expect(&http.get("/bookmarks/first").await, StatusCode::BAD_REQUEST);

    // List: newest first, three at a time, every row exactly once, the last page without next.
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    let listed = pages(&http, 3).await;
    assert_eq!(
        listed.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 1],
        "{listed:?}"
    );
    assert_eq!(listed.concat(), newest_first);
    assert_eq!(pages(&http, 100).await, vec![newest_first.clone()]);
    // A cursor that was tampered with, and page sizes out of bounds: 400.
    let page = http.get("/bookmarks?limit=3").await;
    let next = page.body["next"].as_str().unwrap();
    let mut tampered = next.to_owned();
    let last = if tampered.ends_with('0') { "1" } else { "0" };
    tampered.replace_range(tampered.len() - 1.., last);
    expect(
        &http
            .get(&format!("/bookmarks?limit=3&cursor={tampered}"))
            .await,
        StatusCode::BAD_REQUEST,
    );
    expect(
        &http.get("/bookmarks?limit=0").await,
        StatusCode::BAD_REQUEST,
    );
    expect(
        &http.get("/bookmarks?limit=101").await,
        StatusCode::BAD_REQUEST,
    );
    expect(
        &http.get("/bookmarks?limit=ten").await,
        StatusCode::BAD_REQUEST,
    );

    // Patch with the version read: written and bumped. Again with the same, now stale, version:
    // 409 and nothing changed. Without a version: last write wins.
    let patched = http
        .patch(&first, &json!({"title": "first page", "version": 0}))
        .await;
    expect(&patched, StatusCode::OK);
    assert_eq!(patched.body["title"], "first page");
    assert_eq!(patched.body["url"], "https://example.com/1");
    assert_eq!(patched.body["version"], 1);
    let stale = http
        .patch(&first, &json!({"title": "lost update", "version": 0}))
        .await;
    expect(&stale, StatusCode::CONFLICT);
    assert_eq!(http.get(&first).await.body["title"], "first page");
    let blind = http.patch(&first, &json!({"tags": ["a", "b"]})).await;
    expect(&blind, StatusCode::OK);
    assert_eq!(blind.body["tags"], json!(["a", "b"]));
    assert_eq!(blind.body["version"], 2);
    // An empty patch, a url another bookmark has, a missing id, an unknown field.
    expect(
        &http.patch(&first, &json!({})).await,
        StatusCode::BAD_REQUEST,
    );
    expect(
        &http
            .patch(&first, &json!({"url": "https://example.com/2"}))
            .await,
        StatusCode::CONFLICT,
    );
    expect(
        &http
            .patch("/bookmarks/999999", &json!({"title": "x"}))
            .await,
        StatusCode::NOT_FOUND,
    );
    expect(
        &http.patch(&first, &json!({"id": 5})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );

    // Delete: 204, then gone from get, from the listing, and from a second delete.
    let deleted = http.delete(&first).await;
    expect(&deleted, StatusCode::NO_CONTENT);
    assert_eq!(deleted.body, Value::Null);
    expect(&http.get(&first).await, StatusCode::NOT_FOUND);
    expect(&http.delete(&first).await, StatusCode::NOT_FOUND);
    let remaining: Vec<i64> = newest_first[..6].to_vec();
    assert_eq!(pages(&http, 4).await.concat(), remaining);

    stop.send(()).unwrap();
    bounded("the server's graceful shutdown", server)
        .await
        .unwrap()
        .unwrap();
    bounded("closing the pool", db.cleanup()).await;
}
