module gatehouse.local/bench/tls/hsload

go 1.19
