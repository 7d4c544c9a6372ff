"""A small Flask app served by the tests."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def index():
    return "Hello from Flask"


@app.post("/json")
def echo_json():
    return jsonify(got=request.get_json(), args=request.args.to_dict())


@app.get("/items/<int:item_id>")
def item(item_id):
    return jsonify(id=item_id, ua=request.headers.get("User-Agent"))


@app.get("/boom")
def boom():
    # Flask (default settings) turns this into a 500 and logs it with app.logger.
    raise KeyError("flask view failed on purpose")
