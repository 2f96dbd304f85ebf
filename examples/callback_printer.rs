//! Prints every request it receives: a stand-in application for the README walk-through,
//! to watch what Junebug POSTs to `mo_url` and `event_url`.
//!
//! ```text
//! cargo run --example callback_printer -- [ADDRESS]     (default 127.0.0.1:9000)
//! ```
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

async fn print(request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let pretty = serde_json::from_slice::<serde_json::Value>(&body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    println!("{} {}\n{pretty}\n", request.method(), request.uri());
    HttpResponse::Ok().finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    println!("Printing callbacks received on http://{address}/");
    HttpServer::new(|| App::new().default_service(web::to(print)))
        .workers(1)
        .bind(address)?
        .run()
        .await
}
