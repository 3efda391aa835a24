//! A meme: its page (`/memes/:id`) and its image (`/memes/:id.svg`).

mod image;
mod page;

use kit::data::Data;
use kit::layout::error_page;
use kit::{Request, Response, Table};

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, data: Vec<Table>) -> Response {
        let data = Data::new(&data);
        match req.route.as_str() {
            "/memes/:id" => page::page(&req, &data),
            "/memes/:id.svg" => image::image(&data),
            _ => error_page(404, &req.path, "There is no such page."),
        }
    }
}

kit::export!(Component with_types_in kit::bindings);
