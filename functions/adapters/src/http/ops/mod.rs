//! The operator part of the HTTP API: reads by id and type, the correlation trace, replay,
//! dead letters and handler switches. Each file holds its routes' handlers; `super::api`
//! registers them.
//!
//! | file | routes |
//! |---|---|
//! | [`reads`] | `GET /events/{eventId}`, `GET /events?type=&from=&to=&limit=&cursor=` |
//! | [`trace`] | `GET /correlations/{correlationId}` |
//! | [`replay`] | `POST /replay` |
//! | [`dead_letters`] | `GET /dead-letters`, `POST /dead-letters/{domain}/redrive`, `POST /dead-letters/{domain}/purge` |
//! | [`handlers`] | `GET /handlers`, `PUT /handlers/{handler}`, `GET /handlers/{handler}/stats` |
//! | [`subscriptions`] | `/subscriptions` and the routes under it (scope `subscriptions:admin`) |

pub mod dead_letters;
pub mod handlers;
pub mod reads;
pub mod replay;
pub mod subscriptions;
pub mod trace;

use crate::config::Config;
use crate::http::auth::TenantSource;

/// What the operator routes need: the table, the queues (replay, dead letters) and the
/// tenant source.
#[derive(Clone)]
pub struct Ops {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub config: Config,
    pub tenant_source: TenantSource,
}
