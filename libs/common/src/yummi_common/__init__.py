"""What Yummi's services share: settings, logging, database unit of work, gRPC plumbing, outbox and consumers."""
