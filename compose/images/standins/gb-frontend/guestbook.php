<?php
// The guestbook's API as upstream's guestbook.php serves it (same query, same answers, same
// Services), written for Debian's php-redis instead of Predis. Writes go to the leader,
// reads to the followers: that is what makes the guestbook a multi-tier test of Services.

// GET_HOSTS_FROM=env: the Service's variable (upstream reads REDIS_SLAVE_SERVICE_HOST for the
// followers, a name left from before the Service was renamed redis-replica: both are taken).
function redis_host(string $service, string ...$variables): string
{
    if (getenv('GET_HOSTS_FROM') !== 'env') {
        return $service;
    }
    foreach ($variables as $variable) {
        if (getenv($variable) !== false) {
            return (string) getenv($variable);
        }
    }
    return $service;
}

function connected(string $host): Redis
{
    $client = new Redis();
    $client->connect($host, 6379, 5.0);
    return $client;
}

if (isset($_GET['cmd'])) {
    header('Content-Type: application/json');
    try {
        if ($_GET['cmd'] === 'set') {
            $client = connected(redis_host('redis-master', 'REDIS_MASTER_SERVICE_HOST'));
            $client->set($_GET['key'], $_GET['value']);
            print('{"message": "Updated"}');
        } else {
            $client = connected(redis_host('redis-replica', 'REDIS_REPLICA_SERVICE_HOST', 'REDIS_SLAVE_SERVICE_HOST'));
            $value = $client->get($_GET['key']);
            print('{"data": ' . json_encode($value === false ? '' : $value) . '}');
        }
    } catch (RedisException $e) {
        // Upstream's Predis error is PHP's fatal-error page with status 500; so is this.
        http_response_code(500);
        print(json_encode(['error' => $e->getMessage()]));
    }
} else {
    phpinfo();
}
