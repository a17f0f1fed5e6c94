//! The bookmarks service: its table, its routes, and how a toolkit error becomes an HTTP answer.
//!
//! | method and path          | does                                   | answers                  |
//! |--------------------------|----------------------------------------|--------------------------|
//! | `POST /bookmarks`        | `Repository::create`                   | 201 + `Location`, 409, 422 |
//! | `GET /bookmarks/{id}`    | `Repository::get_by_id`                | 200, 404                 |
//! | `GET /bookmarks?limit=&cursor=` | `find(..).order_by(..).page(..)` (newest first) | 200 `{items, next}`, 400 |
//! | `PATCH /bookmarks/{id}`  | `Repository::update` with a patch      | 200, 400, 404, 409       |
//! | `DELETE /bookmarks/{id}` | `Repository::delete`                   | 204, 404                 |
//!
//! Every error answer is JSON, `{"error": "..."}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use toolkit::{Cursor, Database, Entity, Error, Filter, Pool, Repository, SqlState};

/// A saved link.
#[derive(Debug, Clone, Serialize, Entity)]
#[entity(table = "bookmarks", schema = "axum_example")]
pub struct Bookmark {
    #[entity(primary_key, generated)]
    id: i64,
    url: String,
    title: String,
    tags: Vec<String>,
    /// Optimistic locking: a client that sends back the version it read cannot overwrite a
    /// change it has not seen.
    #[entity(version)]
    version: i32,
    #[entity(generated)]
    created_at: chrono::DateTime<chrono::Utc>,
}

/// Idempotent, so the service can start again and again on the same database; the data stays,
/// as a service's does (`DROP SCHEMA axum_example CASCADE` removes it).
const SCHEMA: &str = "
CREATE SCHEMA IF NOT EXISTS axum_example;
CREATE TABLE IF NOT EXISTS axum_example.bookmarks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url text NOT NULL UNIQUE CHECK (url <> ''),
    title text NOT NULL CHECK (title <> ''),
    tags text[] NOT NULL DEFAULT '{}',
    version int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bookmarks_newest ON axum_example.bookmarks (created_at DESC, id)";

/// Creates the table when missing and checks that it still matches [`Bookmark`], so a drifted
/// schema stops the service at startup instead of failing its first requests. Register it with
/// `Database::register_init_callback`.
pub async fn migrate(pool: Pool) -> toolkit::Result<()> {
    pool.get().await?.batch_execute(SCHEMA).await?;
    pool.check_schema::<Bookmark>().await
}

/// The service's routes, on `db`.
pub fn router(db: Database) -> Router {
    Router::new()
        .route("/bookmarks", get(list).post(create))
        .route("/bookmarks/{id}", get(fetch).patch(change).delete(remove))
        .with_state(db)
}

/// The body of `POST /bookmarks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBookmark {
    url: String,
    title: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// The body of `PATCH /bookmarks/{id}`: the fields to change, and optionally the version the
/// client read (then a bookmark changed since is a 409 and stays as it is).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    url: Option<String>,
    title: Option<String>,
    tags: Option<Vec<String>>,
    version: Option<i32>,
}

/// The query of `GET /bookmarks`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    /// `next` of the previous page; absent for the first page.
    cursor: Option<String>,
    /// Page size, 1 to [`MAX_PAGE`]; [`DEFAULT_PAGE`] when absent.
    limit: Option<u64>,
}

/// One page of `GET /bookmarks`.
#[derive(Debug, Serialize)]
struct PageBody {
    items: Vec<Bookmark>,
    /// The `cursor` of the next page; `null` on the last one.
    next: Option<String>,
}

const DEFAULT_PAGE: u64 = 20;
/// Bounds what one request can make the database read and the service hold in memory.
const MAX_PAGE: u64 = 100;

async fn create(
    State(db): State<Database>,
    body: Result<Json<NewBookmark>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(new) = body?;
    let stored = Repository::<Bookmark>::new(&db)
        .create(&Bookmark {
            id: 0,
            url: new.url,
            title: new.title,
            tags: new.tags,
            version: 0,
            created_at: chrono::DateTime::UNIX_EPOCH,
        })
        .await?;
    let location = format!("/bookmarks/{}", stored.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(stored),
    )
        .into_response())
}

async fn fetch(
    State(db): State<Database>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Bookmark>, ApiError> {
    let Path(id) = id?;
    Ok(Json(Repository::<Bookmark>::new(&db).get_by_id(id).await?))
}

async fn list(
    State(db): State<Database>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<PageBody>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    // A cursor that was edited or made for another listing is InvalidData: a 400.
    let cursor: Option<Cursor> = query.cursor.as_deref().map(str::parse).transpose()?;
    let c = Bookmark::columns();
    let page = Repository::<Bookmark>::new(&db)
        .find(Filter::all())
        .order_by(c.created_at.desc())
        .page(cursor.as_ref(), limit)
        .await?;
    Ok(Json(PageBody {
        items: page.items,
        next: page.next.map(|cursor| cursor.to_string()),
    }))
}

async fn change(
    State(db): State<Database>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<Changes>, JsonRejection>,
) -> Result<Json<Bookmark>, ApiError> {
    let (Path(id), Json(changes)) = (id?, body?);
    // An empty patch is the repository's InvalidData: a 400, with nothing sent to the server.
    let patch = BookmarkPatch {
        url: changes.url,
        title: changes.title,
        tags: changes.tags,
        version: changes.version,
    };
    Ok(Json(
        Repository::<Bookmark>::new(&db).update(id, patch).await?,
    ))
}

async fn remove(
    State(db): State<Database>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    Repository::<Bookmark>::new(&db).delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An error answer: a status and a JSON body saying what went wrong.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

/// What the client did wrong, or 5xx when it was not the client. The toolkit's accessors decide,
/// never the message text.
fn status_of(err: &Error) -> StatusCode {
    let code = err.code();
    match err {
        Error::RecordNotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        // Here always the request's fault: a tampered cursor, an empty patch, a value that does
        // not fit its column. (A service with JSON columns that may not decode any more would
        // also see InvalidData for its own stored rows, which is a 500.)
        Error::InvalidData { .. } => StatusCode::BAD_REQUEST,
        _ if code == Some(&SqlState::UNIQUE_VIOLATION) => StatusCode::CONFLICT,
        _ if code == Some(&SqlState::CHECK_VIOLATION)
            || code == Some(&SqlState::NOT_NULL_VIOLATION) =>
        {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        // The database is away or overloaded: worth a retry, unlike a 500.
        _ if err.is_timeout() || err.is_connection_lost() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let status = status_of(&err);
        if status.is_server_error() {
            // The details are for the operator's log, not for the client.
            eprintln!("request failed: {err}");
            return ApiError::new(status, status.canonical_reason().unwrap_or("server error"));
        }
        ApiError::new(status, err.to_string())
    }
}

// axum's own rejections (malformed JSON, a wrong field type, a non-numeric id) keep their status
// (400, 415 or 422) but answer in the service's JSON shape.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (
            self.status,
            Json(Body {
                error: self.message,
            }),
        )
            .into_response()
    }
}
