-- The Merkle log over the journal (RFC 9162). Level-0 nodes are the journal's leaf_hash column;
-- this table holds every complete subtree of level >= 1: node (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level). Any root or proof needs O(log n) of them.
CREATE TABLE tlog_nodes (
    level INTEGER NOT NULL CHECK (level >= 1),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    hash  BLOB    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

-- One row per integration step: the tree now covers the first `size` receipts.
CREATE TABLE tlog_tree_heads (
    size          INTEGER PRIMARY KEY CHECK (size >= 0),
    root_hash     BLOB    NOT NULL CHECK (length(root_hash) = 32),
    integrated_at TEXT    NOT NULL
);

-- Signed checkpoints (C2SP signed notes), all kept.
CREATE TABLE tlog_checkpoints (
    size       INTEGER PRIMARY KEY CHECK (size >= 0),
    root_hash  BLOB    NOT NULL CHECK (length(root_hash) = 32),
    origin     TEXT    NOT NULL,
    note       TEXT    NOT NULL,
    signed_at  TEXT    NOT NULL
);

CREATE TRIGGER tlog_nodes_no_update BEFORE UPDATE ON tlog_nodes
BEGIN SELECT RAISE(ABORT, 'tlog_nodes is append-only: UPDATE refused'); END;
CREATE TRIGGER tlog_nodes_no_delete BEFORE DELETE ON tlog_nodes
BEGIN SELECT RAISE(ABORT, 'tlog_nodes is append-only: DELETE refused'); END;
CREATE TRIGGER tlog_tree_heads_no_update BEFORE UPDATE ON tlog_tree_heads
BEGIN SELECT RAISE(ABORT, 'tlog_tree_heads is append-only: UPDATE refused'); END;
CREATE TRIGGER tlog_tree_heads_no_delete BEFORE DELETE ON tlog_tree_heads
BEGIN SELECT RAISE(ABORT, 'tlog_tree_heads is append-only: DELETE refused'); END;
CREATE TRIGGER tlog_checkpoints_no_update BEFORE UPDATE ON tlog_checkpoints
BEGIN SELECT RAISE(ABORT, 'tlog_checkpoints is append-only: UPDATE refused'); END;
CREATE TRIGGER tlog_checkpoints_no_delete BEFORE DELETE ON tlog_checkpoints
BEGIN SELECT RAISE(ABORT, 'tlog_checkpoints is append-only: DELETE refused'); END;
