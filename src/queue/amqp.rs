//! RabbitMQ queue: being written.
