//! The lists of memes: the home page (`/`), one page of all memes or of one
//! tag (`/memes`), and the same page as JSON (`/api/memes`).

mod api;
mod home;
mod list;
mod paging;
mod tag_cloud;

use kit::data::Data;
use kit::layout::error_page;
use kit::{Request, Response, Table};

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, data: Vec<Table>) -> Response {
        let data = Data::new(&data);
        match req.route.as_str() {
            "/" => home::page(&data),
            "/memes" => list::page(&req, &data),
            "/api/memes" => api::page(&req, &data),
            _ => error_page(404, &req.path, "There is no such page."),
        }
    }
}

kit::export!(Component with_types_in kit::bindings);
