// autocannon's body check, as a file so worker threads can load it: GraphQL errors come back with status 200.
module.exports = (body) => !body.includes('"errors"');
